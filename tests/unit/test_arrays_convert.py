"""Image bytes to arrays: every channel mode x normalisation x dtype on tiny images built here, exact values."""

from __future__ import annotations

import itertools
import struct
import zlib

import cv2
import numpy as np
import pytest

from spark_img2ds.arrays.options import CHANNEL_MODES, DTYPES, NORMALIZE_MODES, ConversionOptions
from spark_img2ds.arrays.pixels import convert_bytes
from spark_img2ds.errors import ConfigError, ConversionError, UnsupportedFormatError
from tests.helpers.images import jpeg_with_exif


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, color_type: int, rows: list[list[int]], depth: int = 8, extra: bytes = b"") -> bytes:
    """A PNG written by hand: rows of samples (filter byte 0 added), 8 or 16 bits per sample."""
    pack = (lambda v: bytes(v)) if depth == 8 else (lambda v: b"".join(struct.pack(">H", x) for x in v))
    raw = b"".join(b"\x00" + pack(r) for r in rows)
    head = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def exif_block(orientation: int) -> bytes:
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


PALETTE = chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255]))
# name -> (file bytes, source mode, depth, pixels as rows of (r, g, b, a) at that depth)
SOURCES = {
    "rgb8": (png(2, 1, 2, [[255, 0, 0, 0, 128, 255]]), "RGB", 8, [[(255, 0, 0, 255), (0, 128, 255, 255)]]),
    "grey8": (png(2, 1, 0, [[0, 200]]), "L", 8, [[(0, 0, 0, 255), (200, 200, 200, 255)]]),
    "grey_alpha8": (png(2, 1, 4, [[100, 255, 100, 0]]), "LA", 8, [[(100, 100, 100, 255), (100, 100, 100, 0)]]),
    "rgba8": (png(2, 1, 6, [[255, 0, 0, 255, 0, 0, 255, 128]]), "RGBA", 8, [[(255, 0, 0, 255), (0, 0, 255, 128)]]),
    "palette": (png(2, 1, 3, [[0, 1]], extra=PALETTE), "RGB", 8, [[(255, 0, 0, 255), (0, 0, 255, 255)]]),
    "palette_alpha": (
        png(2, 1, 3, [[0, 1]], extra=PALETTE + chunk(b"tRNS", b"\x80")),
        "RGBA",
        8,
        [[(255, 0, 0, 128), (0, 0, 255, 255)]],
    ),
    "rgb16": (png(1, 1, 2, [[65535, 0, 32768]], depth=16), "RGB", 16, [[(65535, 0, 32768, 65535)]]),
    "grey16": (png(2, 1, 0, [[0, 65535]], depth=16), "L", 16, [[(0, 0, 0, 65535), (65535, 65535, 65535, 65535)]]),
    "rgba16": (png(1, 1, 6, [[4096, 8192, 12288, 32768]], depth=16), "RGBA", 16, [[(4096, 8192, 12288, 32768)]]),
    # 2 wide x 1 high, EXIF orientation 6 (rotate 90 clockwise): displayed 1 wide x 2 high.
    "exif_rotated": (
        png(2, 1, 2, [[255, 0, 0, 0, 0, 255]], extra=chunk(b"eXIf", exif_block(6))),
        "RGB",
        8,
        [[(255, 0, 0, 255)], [(0, 0, 255, 255)]],
    ),
}


def reference(rows, source_mode: str, depth: int, channel_mode: str, normalize: str, dtype: str) -> np.ndarray:
    """The expected array, computed pixel by pixel from the definitions."""
    m = float((1 << depth) - 1)
    target = source_mode if channel_mode == "auto" else channel_mode
    grey_source = source_mode in ("L", "LA")
    out = []
    for row in rows:
        line = []
        for r, g, b, a in row:
            over = [c * (a / m) + m * (1.0 - a / m) for c in (r, g, b)]  # on white

            def luma(px):
                return px[0] if grey_source else float(np.dot(np.array(px, float), [0.299, 0.587, 0.114]))

            value = {
                "L": [luma(over)],
                "LA": [luma([r, g, b]), a],
                "RGB": over,
                "RGBA": [r, g, b, a],
            }[target]
            line.append([float(v) for v in value])
        out.append(line)
    arr = np.array(out, np.float64)
    if normalize == "0..1":
        arr = arr / m
    elif normalize == "-1..1":
        arr = arr / m * 2.0 - 1.0
    if np.dtype(dtype).kind == "u":
        arr = np.clip(np.rint(arr), 0, np.iinfo(dtype).max)
    if dtype == "float16":
        arr = np.minimum(arr, 65504.0)  # float16's largest finite value
    arr = arr.astype(dtype)
    return arr[:, :, 0] if target == "L" else arr


CASES = list(itertools.product(SOURCES, CHANNEL_MODES, NORMALIZE_MODES, DTYPES))


@pytest.mark.parametrize(("source", "channel_mode", "normalize", "dtype"), CASES)
def test_every_mode_normalisation_and_dtype_gives_the_exact_values(source, channel_mode, normalize, dtype):
    data, mode, depth, rows = SOURCES[source]
    options = ConversionOptions(channel_mode=channel_mode, normalize_mode=normalize, dtype=dtype)
    array, pixels = convert_bytes(data, options)
    expected = reference(rows, mode, depth, channel_mode, normalize, dtype)
    assert (pixels.mode, pixels.depth) == (mode, depth)
    assert array.dtype == np.dtype(dtype) and array.shape == expected.shape
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(array, expected, rtol=1e-3 if dtype == "float16" else 1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(array, expected)


def test_jpeg_exif_orientation_cmyk_and_flatten():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :10] = (0, 0, 255)  # left half red (BGR)
    rotated, _ = convert_bytes(jpeg_with_exif(img, 6), ConversionOptions())
    assert rotated.shape == (20, 10, 3)  # displayed portrait
    assert rotated[2, 5, 0] > 200 and rotated[2, 5, 2] < 60  # red on top after a clockwise turn: RGB order
    cmyk = np.dstack([np.full((4, 4), 30, np.uint8)] * 4)
    ok, data = cv2.imencode(".jpg", cmyk)
    assert ok
    array, pixels = convert_bytes(data.tobytes(), ConversionOptions(flatten=True))
    assert pixels.mode == "RGB" and array.shape == (4 * 4 * 3,)


def test_resizing_uses_the_job_modes_and_pads_white_at_the_source_depth():
    data = png(4, 2, 0, [[0, 0, 0, 0], [0, 0, 0, 0]], depth=16)
    array, _ = convert_bytes(
        data, ConversionOptions(channel_mode="L", dtype="uint16", image_size=4, resize_mode="border")
    )
    assert array.shape == (4, 4)
    assert array[0].tolist() == [65535] * 4 and array[1].tolist() == [0] * 4  # white bands, black image


def test_frames_beyond_the_image_and_bad_input_are_conversion_errors():
    data = SOURCES["rgb8"][0]
    with pytest.raises(ConversionError, match="frame 3 not found: the image has 1"):
        convert_bytes(data, ConversionOptions(frame=3))
    all_frames, _ = convert_bytes(data, ConversionOptions(frame="all"))
    assert all_frames.shape == (1, 1, 2, 3)
    with pytest.raises(UnsupportedFormatError):
        convert_bytes(b"P6\n2 2\n255\n" + bytes(12), ConversionOptions())
    with pytest.raises(ConversionError, match="max_image_pixels"):
        convert_bytes(png(30000, 30000, 2, []), ConversionOptions())


@pytest.mark.parametrize(
    "bad",
    [
        {"channel_mode": "CMYK"},
        {"normalize_mode": "0..255"},
        {"dtype": "int8"},
        {"frame": -1},
        {"resize_mode": "border"},
    ],
)
def test_bad_options_are_refused_by_name(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ConversionOptions(**bad)
