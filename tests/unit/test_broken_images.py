"""A corpus of broken and unusual images through the image path: each ends with a result or an ImageError.

None may crash the worker, hang it, or make it allocate what a header merely claims.
"""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.process import ImageError, ImageProcessor


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rows: bytes, color_type: int = 2, depth: int = 8, interlace: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def encoded(ext: str, img: np.ndarray, params: tuple = ()) -> bytes:
    ok, data = cv2.imencode(ext, img, list(params))
    assert ok
    return data.tobytes()


def gradient(w: int = 64, h: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    return np.broadcast_to(x, (h, w, 3)).copy()


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def animated_webp() -> bytes:
    """A WebP with the animation flag and two 1x1 frames whose bitstreams are garbage."""
    vp8x = riff_chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + (0).to_bytes(3, "little") + (0).to_bytes(3, "little"))
    anim = riff_chunk(b"ANIM", bytes(6))
    frame = riff_chunk(b"ANMF", bytes(12) + bytes(4) + riff_chunk(b"VP8 ", bytes(16)))
    body = b"WEBP" + vp8x + anim + frame + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif_two_frames() -> bytes:
    """A minimal animated GIF (two 1x1 frames), written by hand."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    )
    return head + loop + frame + frame + b"\x3b"


JPEG = encoded(".jpg", gradient(), (cv2.IMWRITE_JPEG_QUALITY, 90))
PNG = encoded(".png", gradient())
HUGE_PNG = png(30000, 30000, b"")  # declares 900 megapixels in a few dozen bytes
HUGE_RGBA_PNG = png(20000, 20000, zlib.compress(b"\x00" * 1000), color_type=6)

BMP_HEAD = b"BM" + bytes(12)
WEBP_HEAD = b"RIFF\x00\x00\x00\x00WEBPVP8L"

CASES = {
    "truncated jpeg": (JPEG[: len(JPEG) // 2], "ok-or-error"),
    "jpeg header only": (JPEG[:20], "error"),
    "jpeg with a corrupt frame header": (JPEG.replace(b"\xff\xc0", b"\xff\xc0\x00\x00", 1)[:400], "error"),
    "truncated png": (PNG[: len(PNG) // 2], "error"),
    "png with a bad crc and garbage": (PNG[:33] + bytes(range(256)), "error"),
    "png declaring zero width": (png(0, 10, b""), "error"),
    "png declaring 30000x30000": (HUGE_PNG, "refused"),
    "rgba png declaring 20000x20000": (HUGE_RGBA_PNG, "refused"),
    "interlaced 1x1 png": (png(1, 1, b"\x00\xff\x00\x00", interlace=1), "ok"),
    "16-bit png": (encoded(".png", (gradient().astype(np.uint16) * 257)), "ok"),
    "grey+alpha png": (png(2, 1, b"\x00\x80\xff\x40\x00", color_type=4), "ok"),
    "palette png": (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 3, 0, 0, 0))
        + png_chunk(b"PLTE", b"\xff\x00\x00\x00\x00\xff")
        + png_chunk(b"IDAT", zlib.compress(b"\x00\x00\x01"))
        + png_chunk(b"IEND", b""),
        "ok",
    ),
    "cmyk jpeg": (encoded(".jpg", np.dstack([gradient(), np.full((48, 64), 40, np.uint8)])), "ok-or-error"),
    "animated gif": (gif_two_frames(), "ok-or-error"),
    "animated webp": (animated_webp(), "ok-or-error"),
    "gif declaring 65535x65535": (b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b"\x3b", "refused"),
    "bmp declaring 60000x60000": (
        b"BM" + bytes(12) + struct.pack("<IiiHH", 40, 60000, -60000, 1, 24) + bytes(24),
        "refused",
    ),
    "webp declaring 16384x16384": (
        b"RIFF\x00\x00\x00\x00WEBPVP8L" + bytes(5) + struct.pack("<I", 0x0FFFFFFF),
        "refused",
    ),
    "tiff header only": (b"II*\x00\x08\x00\x00\x00\x00\x00", "error"),
    "empty": (b"", "error"),
    "text": (b"<html>not an image</html>", "error"),
    "portable pixmap bomb": (b"P6\n30000 30000\n255\n" + bytes(100), "error"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_broken_image_ends_with_a_status(name):
    data, expected = CASES[name]
    processor = ImageProcessor(ImageOptions(image_size=32))
    started = time.monotonic()
    try:
        out = processor.process(data)
        outcome = "ok"
    except ImageError as err:
        outcome = "refused" if "max_image_pixels" in str(err) else "error"
    assert time.monotonic() - started < 2, "no image may take long: nothing large is allocated"
    if expected == "ok-or-error":
        assert outcome in ("ok", "error")
    else:
        assert outcome == expected
    if outcome == "ok":
        decoded = cv2.imdecode(np.frombuffer(out.data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded is not None and decoded.ndim == 3 and decoded.shape[2] == 3 and decoded.dtype == np.uint8


def test_the_pixel_limit_is_an_option():
    small = ImageProcessor(ImageOptions(image_size=32, max_image_pixels=64 * 48 - 1))
    with pytest.raises(ImageError, match="more pixels than max_image_pixels"):
        small.process(PNG)
    assert ImageProcessor(ImageOptions(image_size=32, max_image_pixels=64 * 48)).process(PNG).width == 32
