"""One input row to one Sample: fetch, opt-out check, decode, resize, encode, hash, EXIF."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE, SUCCESS
from spark_img2ds.imaging.exif import extract_exif
from spark_img2ds.imaging.process import ImageError, ImageProcessor
from spark_img2ds.net.fetch import Fetcher, FetchError

# Threads beyond thread_count, so that decoding and encoding never hold a download slot.
# Each Python worker is pinned to one core, so two cover the image work it can do at once.
PROCESSING_THREADS = 2


@dataclass
class Sample:
    """The outcome for one input row (its fields are metadata columns, see dataset.columns)."""

    status: str
    error_message: str | None = None
    image: bytes | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    exif: str | None = None
    hash: str | None = None
    nbytes: int = 0


def pool_size(cfg: Config) -> int:
    """Threads of a task's pool: thread_count downloading, PROCESSING_THREADS more for image work."""
    return cfg.thread_count + PROCESSING_THREADS


def hash_bytes(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


class SampleMaker:
    """URL in, Sample out.

    As in img2dataset, thread_count is the number of downloads in flight: a thread holds a
    download slot only while it fetches, and the pool has a few more threads than slots,
    so a slow network always has thread_count requests open while images are processed.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.download_slots = threading.BoundedSemaphore(cfg.thread_count)
        self.fetcher = Fetcher(
            timeout=cfg.timeout,
            retries=cfg.retries,
            user_agent_token=cfg.user_agent_token,
            directives=cfg.directives,
            verify_ssl=not cfg.ignore_ssl_certificate,
            policy=cfg.address_policy(),
            max_redirects=cfg.max_redirects,
            max_bytes=cfg.max_download_bytes or None,
            proxy=cfg.proxy,
        )
        self.images = ImageProcessor(cfg.image_options())

    def __call__(self, url: str | None) -> Sample:
        if url is None or not url.strip():
            return Sample(FAILED_TO_DOWNLOAD, "missing url")
        try:
            with self.download_slots:
                data = self.fetcher.fetch(url.strip())
        except FetchError as err:
            return Sample(FAILED_TO_DOWNLOAD, str(err))
        try:
            out = self.images.process(data)
        except ImageError as err:
            return Sample(FAILED_TO_RESIZE, str(err), nbytes=len(data))
        except Exception as err:  # a decoder bug must not end the shard: record it on the row
            return Sample(FAILED_TO_RESIZE, f"unexpected error: {type(err).__name__}: {err}", nbytes=len(data))
        return Sample(
            SUCCESS,
            image=out.data,
            width=out.width,
            height=out.height,
            original_width=out.original_width,
            original_height=out.original_height,
            exif=extract_exif(data, out.source_format) if self.cfg.extract_exif else None,
            hash=hash_bytes(data, self.cfg.compute_hash) if self.cfg.compute_hash else None,
            nbytes=len(data),
        )
