"""One input row to one Sample: fetch, opt-out check, decode, resize, encode, hash, EXIF."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from spark_img2ds.arrays.pixels import convert_bytes
from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE, SUCCESS
from spark_img2ds.errors import ConversionError
from spark_img2ds.imaging.blur import BoxError, parse_boxes
from spark_img2ds.imaging.exif import extract_exif
from spark_img2ds.imaging.process import ImageError, ImageProcessor, check_dimensions
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
    array: np.ndarray | None = None  # npz output: the image as an array, instead of encoded bytes
    source_sha256: str | None = None  # npz output: provenance of the array
    delayed: bool = False  # the download waited for its host (max_connections_per_host, a cool-down)
    throttled_host: str | None = None  # the host answered 429/503 and was put in a cool-down
    unanswered_host: str | None = None  # the host's connection timed out, or it was skipped for that


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
            max_connections_per_host=cfg.max_connections_per_host,
            connect_timeout=cfg.connect_timeout,
        )
        self.images = ImageProcessor(cfg.image_options())
        self.arrays = (
            dataclasses.replace(cfg.conversion_options(), flatten=False) if cfg.output_format == "npz" else None
        )

    def __call__(self, url: str | None, expected_hash: str | None = None, bbox: Any = None) -> Sample:
        """The sample of one row; expected_hash (verify_hash's column) must match the downloaded bytes, and
        bbox (bbox_col's value) lists boxes to blur."""
        sample = self._make(url, expected_hash, bbox)
        sample.delayed, sample.throttled_host, sample.unanswered_host = self.fetcher.politeness()
        return sample

    def _make(self, url: str | None, expected_hash: str | None, bbox: Any) -> Sample:
        if url is None or not url.strip():
            return Sample(FAILED_TO_DOWNLOAD, "missing url")
        try:
            boxes = parse_boxes(bbox) if self.cfg.bbox_col else None
        except BoxError as err:
            return Sample(FAILED_TO_RESIZE, str(err))
        try:
            with self.download_slots:
                data = self.fetcher.fetch(url.strip())
        except FetchError as err:
            return Sample(FAILED_TO_DOWNLOAD, str(err))
        if self.cfg.verify_hash is not None:
            computed = hash_bytes(data, self.cfg.verify_hash[1])
            if expected_hash is None or computed != str(expected_hash).strip().lower():
                return Sample(FAILED_TO_DOWNLOAD, "hash mismatch", nbytes=len(data))
        try:
            if self.arrays is not None:
                return self._array_sample(data, boxes)
            out = self.images.process(data, boxes)
        except (ImageError, ConversionError) as err:
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

    def _array_sample(self, data: bytes, boxes: list | None) -> Sample:
        """npz output: the array, checked like an image (size, area, aspect), with the source's sha256.

        Raises ImageError or ConversionError for the caller to record, as the image path does.
        """
        cfg = self.cfg
        array, first = convert_bytes(data, self.arrays, cfg.max_image_pixels, boxes)
        width, height = first.original
        check_dimensions(width, height, self.images.options)
        out_height, out_width = array.shape[1:3] if self.arrays.frame == "all" else array.shape[:2]
        sha256 = hash_bytes(data, "sha256")
        digest = None
        if cfg.compute_hash:
            digest = sha256 if cfg.compute_hash == "sha256" else hash_bytes(data, cfg.compute_hash)
        return Sample(
            SUCCESS,
            width=int(out_width),
            height=int(out_height),
            original_width=width,
            original_height=height,
            exif=extract_exif(data, first.format) if cfg.extract_exif else None,
            hash=digest,
            nbytes=len(data),
            array=array.ravel() if cfg.flatten else array,
            source_sha256=sha256,
        )
