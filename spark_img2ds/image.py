"""Decode, check, resize and encode one image; EXIF and hashing of raw bytes.

Runs inside the download threads: OpenCV releases the GIL, so decoding in
the threads uses the cores without a process per image.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from spark_img2ds.config import Config
from spark_img2ds.resize import apply_plan, decode_reduction, plan_resize

logging.getLogger("exifread").setLevel(logging.CRITICAL)

_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_ENCODE_PARAM = {"jpg": cv2.IMWRITE_JPEG_QUALITY, "png": cv2.IMWRITE_PNG_COMPRESSION, "webp": cv2.IMWRITE_WEBP_QUALITY}


class ImageError(Exception):
    """The bytes are not a usable image; the message is stored as error_message."""


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    width: int | None
    height: int | None
    original_width: int | None
    original_height: int | None


def sniff_format(data: bytes) -> str | None:
    """Image container from magic bytes: jpg, png, webp, gif, bmp, tiff or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"GIF8",):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def _jpeg_markers(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset) of each JPEG segment up to the image data, walked by segment lengths.

    The walk ends after yielding end of image (0xD9) or start of scan (0xDA); ending
    without one of those means the bytes did not parse as JPEG segments.
    """
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        yield marker, pos
        if marker in (0xD9, 0xDA):
            return
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, as stored (before EXIF orientation); None if absent."""
    for marker, pos in _jpeg_markers(data):
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return (width, height) if width and height else None
    return None


def _jpeg_has_exif(data: bytes) -> bool | None:
    """Whether an APP1 segment before the frame header holds EXIF; None if the markers do not parse."""
    for marker, pos in _jpeg_markers(data):
        if marker in _SOF_MARKERS or marker in (0xD9, 0xDA):
            return False  # EXIF comes before the image data
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return True
    return None


def _png_has_exif(data: bytes) -> bool | None:
    """Whether the chunk list has an eXIf chunk (before or after the image data); None if it does not parse."""
    pos, end = 8, len(data)
    while pos + 8 <= end:
        kind = data[pos + 4 : pos + 8]
        if kind == b"eXIf":
            return True
        if kind == b"IEND":
            return False
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return None


def has_exif(data: bytes, fmt: str | None) -> bool:
    """True when the file carries an EXIF block: parsing is slow, so look first.

    JPEG markers and PNG chunks are walked by their lengths, which reads a few bytes
    where a search read 64 KiB (a whole PNG); a file whose structure does not parse
    is searched instead, so that a damaged file loses no EXIF it has.
    """
    if fmt == "jpg":
        found = _jpeg_has_exif(data)
        return data.find(b"Exif\x00\x00", 0, 65536) >= 0 if found is None else found
    if fmt == "png":
        found = _png_has_exif(data)
        return b"eXIf" in data if found is None else found
    if fmt == "webp":
        return data.find(b"EXIF", 0, 65536) >= 0
    return fmt == "tiff"


def extract_exif(data: bytes) -> str:
    """EXIF tags as a JSON object string; "{}" when there are none or they cannot be read."""
    import exifread

    if not has_exif(data, sniff_format(data)):
        return "{}"
    try:
        tags = exifread.process_file(io.BytesIO(data), details=False)
    except Exception:  # exifread raises many kinds of errors on damaged tags
        return "{}"
    return json.dumps({k: str(v).strip() for k, v in tags.items() if v is not None})


def hash_bytes(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded image as 8-bit BGR; transparency is composited on white."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if channels == 2:
        bgr, alpha = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR), img[:, :, 1]
    elif channels == 4:
        bgr, alpha = img[:, :, :3], img[:, :, 3]
    else:
        return img[:, :, :3]
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    out = bgr.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


class ImageProcessor:
    """Turns downloaded bytes into the stored image under one Config."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.ext = "." + cfg.encode_format
        self.params = [int(_ENCODE_PARAM[cfg.encode_format]), int(cfg.encode_quality)]

    def decode(self, data: bytes, reduce: int = 1) -> np.ndarray:
        """8-bit BGR pixels; JPEG goes through IMREAD_COLOR (or a reduced variant), which also
        applies EXIF orientation."""
        fmt = sniff_format(data)
        buf = np.frombuffer(data, np.uint8)
        if fmt == "jpg":
            flag = _REDUCED_FLAGS.get(reduce, cv2.IMREAD_COLOR)
        else:
            flag = cv2.IMREAD_UNCHANGED
        try:
            img = cv2.imdecode(buf, flag)
        except cv2.error:
            raise ImageError("image decoding error") from None
        if img is None or img.size == 0:
            raise ImageError(
                "image decoding error: not a supported image format" if fmt is None else "image decoding error"
            )
        return img if fmt == "jpg" else _to_bgr8(img)

    def _decode_sized(self, data: bytes) -> tuple[np.ndarray, int, int]:
        """Pixels and the original (displayed) width and height, decoding JPEGs reduced when the
        resize allows it."""
        cfg = self.cfg
        header = jpeg_size(data) if sniff_format(data) == "jpg" else None
        if header is None:
            img = self.decode(data)
            return img, img.shape[1], img.shape[0]
        w0, h0 = header
        if w0 * h0 > cfg.max_image_area:  # refuse before spending a decode on it
            raise ImageError("image area too large")
        factor = decode_reduction(w0, h0, cfg.image_size, cfg.resize_mode)
        img = self.decode(data, factor)
        if factor == 1:
            return img, img.shape[1], img.shape[0]
        rotated = w0 != h0 and img.shape[:2] == (-(-w0 // factor), -(-h0 // factor))
        return (img, h0, w0) if rotated else (img, w0, h0)

    def process(self, data: bytes) -> ProcessedImage:
        cfg = self.cfg
        if cfg.disable_all_reencoding:
            return ProcessedImage(data, None, None, None, None)
        img, width, height = self._decode_sized(data)
        if min(width, height) < cfg.min_image_size:
            raise ImageError("image too small")
        if width * height > cfg.max_image_area:
            raise ImageError("image area too large")
        if max(width, height) / min(width, height) > cfg.max_aspect_ratio:
            raise ImageError("aspect ratio too large")
        plan = plan_resize(width, height, cfg.image_size, cfg.resize_mode, cfg.resize_only_if_bigger)
        if cfg.skip_reencode and not plan.changes_pixels and sniff_format(data) == cfg.encode_format:
            return ProcessedImage(data, width, height, width, height)
        out = apply_plan(img, plan, cfg.upscale_interpolation, cfg.downscale_interpolation, cfg.fast_downscale)
        try:
            ok, encoded = cv2.imencode(self.ext, out, self.params)
        except cv2.error:
            raise ImageError("image encoding error") from None
        if not ok:
            raise ImageError("image encoding error")
        return ProcessedImage(encoded.tobytes(), out.shape[1], out.shape[0], width, height)
