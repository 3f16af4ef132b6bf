"""Images to arrays in plain Python: convert, convert_result, convert_many, supported_formats, decoder_capabilities.

Sources: str and PathLike paths, bytes / bytearray / memoryview, binary file objects,
http(s) URLs (fetched by the job's downloader, with its timeout, size cap, address
policy and proxies) and PIL images when Pillow happens to be installed. Errors name a
source briefly (a path, a URL without credentials, "bytes (N)") and never include it.
Importing this module starts neither Spark nor the JVM.
"""

from __future__ import annotations

import functools
import glob
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spark_img2ds.arrays.options import ConversionOptions
from spark_img2ds.arrays.pixels import convert_bytes
from spark_img2ds.errors import ConversionError, UnsupportedFormatError
from spark_img2ds.imaging.exif import extract_exif
from spark_img2ds.secrets import redact_url

MAX_SOURCE_BYTES = 50_000_000
FETCH_OPTIONS = (
    "timeout",
    "connect_timeout",
    "allow_private_networks",
    "allowed_networks",
    "proxy",
    "max_download_bytes",
    "retries",
)


@dataclass
class ConversionResult:
    """One source's outcome: the array and what it came from, or the error."""

    source: str
    array: np.ndarray | None = None
    format: str | None = None
    mode: str | None = None
    original_size: tuple[int, int] | None = None  # (width, height) as displayed
    exif: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.array is None else tuple(self.array.shape)

    @property
    def dtype(self) -> str | None:
        return None if self.array is None else str(self.array.dtype)


@dataclass
class BatchResult:
    """Results of convert_many in input order, with counts."""

    results: list[ConversionResult]

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def errors(self) -> int:
        return len(self.results) - self.ok

    @property
    def total(self) -> int:
        return len(self.results)

    def arrays(self) -> list[np.ndarray]:
        """The arrays of the successful results, in order."""
        return [r.array for r in self.results if r.array is not None]


def describe_source(source: Any) -> str:
    """A short name for a source, safe to show: never its bytes, never a URL's credentials."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"bytes ({len(source)})"
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        return redact_url(text) if "://" in text else text
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    return type(source).__name__


def _read_source(source: Any, fetch: dict[str, Any]) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.startswith(("http://", "https://")):
            return _fetch(text, fetch)
        if "://" in text and not text.startswith("file://"):
            raise ConversionError("only http(s) URLs and local paths are read")
        path = text.removeprefix("file://")
        if os.path.getsize(path) > MAX_SOURCE_BYTES:
            raise ConversionError("file larger than max_download_bytes")
        with open(path, "rb") as fh:
            return fh.read()
    if hasattr(source, "read"):
        data = source.read(MAX_SOURCE_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise ConversionError("file object must be opened in binary mode")
        if len(data) > MAX_SOURCE_BYTES:
            raise ConversionError("file larger than max_download_bytes")
        return bytes(data)
    if type(source).__module__.startswith("PIL."):  # Pillow is optional: use it only when given one of its images
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        return buffer.getvalue()
    raise ConversionError(f"unsupported source type {type(source).__name__}")


def _fetch(url: str, options: dict[str, Any]) -> bytes:
    from spark_img2ds.net.fetch import FetchError

    key = tuple(sorted((k, tuple(v) if isinstance(v, (list, set, frozenset)) else v) for k, v in options.items()))
    try:
        return _fetcher(key).fetch(url)
    except FetchError as err:
        raise ConversionError(str(err)) from None


@functools.lru_cache(maxsize=8)
def _fetcher(options: tuple[tuple[str, Any], ...]):
    """One downloader per set of fetch options, kept for the process: convert() and convert_many() calls
    reuse its kept-alive connections, as the job's threads do (a new HTTPS connection per URL costs
    several times the CPU of a GET on a kept one)."""
    from spark_img2ds.net.fetch import Fetcher
    from spark_img2ds.net.policy import CONNECT_TIMEOUT, AddressPolicy

    given = dict(options)
    return Fetcher(
        timeout=given.get("timeout", 10),
        connect_timeout=given.get("connect_timeout", CONNECT_TIMEOUT),
        retries=given.get("retries", 0),
        policy=AddressPolicy.build(given.get("allow_private_networks", False), given.get("allowed_networks")),
        max_bytes=given.get("max_download_bytes", MAX_SOURCE_BYTES) or None,
        proxy=given.get("proxy"),
    )


def convert_result(source: Any, options: ConversionOptions | dict | None = None, **fetch: Any) -> ConversionResult:
    """Convert one source; never raises for a bad source (the result carries the error)."""
    unknown = sorted(set(fetch) - set(FETCH_OPTIONS))
    if unknown:
        raise TypeError(f"unknown keyword(s): {', '.join(unknown)}")
    opts = ConversionOptions.of(options)
    name = describe_source(source)
    try:
        data = _read_source(source, fetch)
        array, first = convert_bytes(data, opts)
    except ConversionError as err:
        return ConversionResult(name, error=str(err))
    except OSError as err:
        return ConversionResult(name, error=f"cannot read: {err.strerror or type(err).__name__}")
    exif = json.loads(extract_exif(data, first.format))
    return ConversionResult(name, array, first.format, first.mode, first.original, exif)


def convert(source: Any, options: ConversionOptions | dict | None = None, **fetch: Any) -> np.ndarray:
    """The array of one source; ConversionError (naming the source briefly) if it cannot be converted."""
    result = convert_result(source, options, **fetch)
    if not result.ok:
        kind = UnsupportedFormatError if result.error == "not a supported image format" else ConversionError
        raise kind(f"{result.source}: {result.error}")
    return result.array


def _expand(source: Any) -> Iterator[Any]:
    """A directory's image files (sorted), a glob's matches (sorted), or an iterable's items."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if os.path.isdir(text):
            for root, _, files in sorted(os.walk(text)):
                yield from (os.path.join(root, f) for f in sorted(files))
            return
        if any(c in text for c in "*?["):
            yield from sorted(glob.glob(text, recursive=True))
            return
        yield text
        return
    if isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray, memoryview)):
        yield from source
        return
    yield source


def convert_many(
    source: Any, options: ConversionOptions | dict | None = None, fail_fast: bool = False, **fetch: Any
) -> BatchResult:
    """Convert a directory, a glob or an iterable of sources; per-item errors are results unless fail_fast."""
    opts = ConversionOptions.of(options)
    results = []
    for item in _expand(source):
        result = convert_result(item, opts, **fetch)
        if fail_fast and not result.ok:
            raise ConversionError(f"{result.source}: {result.error}")
        results.append(result)
    return BatchResult(results)


_PROBES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "bmp": ".bmp", "tiff": ".tiff"}


def decoder_capabilities() -> dict[str, dict[str, bool]]:
    """What the installed OpenCV really does, probed by encoding and decoding a 2x2 image per format."""
    import cv2

    sample = np.zeros((2, 2, 3), np.uint8)
    caps = {}
    for name, ext in _PROBES.items():
        try:
            ok, data = cv2.imencode(ext, sample)
            decodes = ok and cv2.imdecode(data, cv2.IMREAD_UNCHANGED) is not None
        except cv2.error:
            ok, decodes = False, False
        caps[name] = {"decode": bool(decodes), "encode": bool(ok)}
    gif = bytes.fromhex("47494638396101000100800000000000ffffff2c00000000010001000002024401003b")
    try:
        caps["gif"] = {"decode": cv2.imdecode(np.frombuffer(gif, np.uint8), cv2.IMREAD_UNCHANGED) is not None}
    except cv2.error:
        caps["gif"] = {"decode": False}
    caps["gif"]["encode"] = False
    return caps


def supported_formats() -> list[str]:
    """The formats convert() reads here: those the installed OpenCV decodes and whose headers we can size."""
    return sorted(name for name, cap in decoder_capabilities().items() if cap["decode"])


__all__ = [
    "BatchResult",
    "ConversionOptions",
    "ConversionResult",
    "convert",
    "convert_many",
    "convert_result",
    "decoder_capabilities",
    "supported_formats",
]
