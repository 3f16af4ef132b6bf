"""The header check both decode paths run first: one reason for one header, whichever path reads it."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from spark_img2ds.arrays.pixels import decode_frames
from spark_img2ds.errors import ConversionError
from spark_img2ds.imaging.formats import PIXELS_MESSAGE, HeaderError, declared_size, sniff_format
from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.process import ImageError, ImageProcessor


def png_declaring(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height, with no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


JPEG = cv2.imencode(".jpg", np.full((12, 20, 3), 90, np.uint8))[1].tobytes()


def test_a_readable_header_gives_its_width_and_height():
    assert declared_size(JPEG, "jpg", 1e9) == (20, 12)
    assert declared_size(png_declaring(30, 40), "png", 1e9) == (30, 40)


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"not an image at all", None, "not a supported image format"),
        (JPEG[:4], "jpg", "unreadable jpg header"),
        (png_declaring(0, 40), "png", "empty image"),
        (png_declaring(30000, 30000), "png", PIXELS_MESSAGE),
    ],
)
def test_each_refusal_names_its_reason(data, fmt, reason):
    with pytest.raises(HeaderError, match=f"^{reason}$"):
        declared_size(data, fmt, 89_478_485)


@pytest.mark.parametrize(
    ("data", "image_message", "array_message"),
    [
        (png_declaring(30000, 30000), PIXELS_MESSAGE, PIXELS_MESSAGE),
        (png_declaring(0, 5), "image decoding error: empty image", "empty image"),
        (JPEG[:4], "image decoding error: unreadable jpg header", "unreadable jpg header"),
    ],
)
def test_the_image_and_array_paths_refuse_a_header_for_the_same_reason(data, image_message, array_message):
    assert sniff_format(data) in ("png", "jpg")
    with pytest.raises(ImageError, match=f"^{image_message}$"):
        ImageProcessor(ImageOptions(image_size=32)).process(data)
    with pytest.raises(ConversionError, match=f"^{array_message}$"):
        decode_frames(data)
