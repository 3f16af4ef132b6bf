"""ImageProcessor on real image files with real OpenCV; EXIF and hashing."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import zlib

import cv2
import numpy as np
import pytest

from spark_img2ds.imaging.exif import extract_exif
from spark_img2ds.imaging.formats import has_exif, sniff_format
from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.process import ImageError, ImageProcessor, ProcessedImage
from spark_img2ds.worker.sample import hash_bytes
from tests.helpers.images import exif_segment, jpeg_with_exif


def exif_of(data: bytes) -> str:
    return extract_exif(data, sniff_format(data))


def make_processor(**options) -> ImageProcessor:
    return ImageProcessor(ImageOptions(**options))


def read(image_dir, name: str) -> bytes:
    return (image_dir / name).read_bytes()


def decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return img


# -- sniff_format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("astronaut.jpg", "jpg"), ("gray.jpg", "jpg"), ("camera.png", "png"), ("alpha.png", "png"), ("pic.webp", "webp")],
)
def test_sniff_format_of_real_files(image_dir, name, fmt):
    assert sniff_format(read(image_dir, name)) == fmt


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"GIF89a\x01\x00", "gif"),
        (b"BM\x00\x00\x00\x00", "bmp"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"<html>not an image</html>", None),
        (b"", None),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
    ],
)
def test_sniff_format_magic_bytes(data, fmt):
    assert sniff_format(data) == fmt


# -- resizing and encoding ----------------------------------------------------------


def test_jpg_to_jpg_border_256(image_dir):
    result = make_processor(image_size=256, resize_mode="border").process(read(image_dir, "chelsea.jpg"))
    assert isinstance(result, ProcessedImage)
    assert sniff_format(result.data) == "jpg"
    assert (result.width, result.height) == (256, 256)
    assert (result.original_width, result.original_height) == (360, 239)
    assert decode(result.data).shape == (256, 256, 3)


def test_big_jpg_border_pads_white(image_dir):
    result = make_processor(image_size=256, resize_mode="border", encode_format="png", encode_quality=1).process(
        read(image_dir, "big.jpg")
    )
    assert (result.original_width, result.original_height) == (3000, 2000)
    out = decode(result.data)
    assert out.shape == (256, 256, 3)
    # 3000x2000 -> 256x171, 42 white rows on top, 43 at the bottom (lossless png)
    assert (out[:42] == 255).all()
    assert (out[213:] == 255).all()
    assert not (out[42:213] == 255).all()


@pytest.mark.parametrize(
    ("mode", "size"),
    [("keep_ratio", (384, 256)), ("keep_ratio_largest", (256, 171)), ("center_crop", (256, 256))],
)
def test_resize_modes_on_big_jpg(image_dir, mode, size):
    result = make_processor(image_size=256, resize_mode=mode).process(read(image_dir, "big.jpg"))
    assert (result.width, result.height) == size
    assert decode(result.data).shape == (size[1], size[0], 3)


def test_upscale_of_tiny_png(image_dir):
    result = make_processor(image_size=64, resize_mode="keep_ratio_largest").process(read(image_dir, "tiny.png"))
    assert (result.original_width, result.original_height) == (12, 10)
    assert (result.width, result.height) == (64, 53)
    assert decode(result.data).shape == (53, 64, 3)


def test_resize_only_if_bigger_keeps_small_image_size(image_dir):
    result = make_processor(image_size=64, resize_mode="border", resize_only_if_bigger=True).process(
        read(image_dir, "tiny.png")
    )
    assert (result.width, result.height) == (12, 10)
    assert sniff_format(result.data) == "jpg"
    assert decode(result.data).shape == (10, 12, 3)


def test_resize_mode_no_keeps_dimensions(image_dir):
    result = make_processor(resize_mode="no").process(read(image_dir, "big.jpg"))
    assert (result.width, result.height) == (3000, 2000)
    assert (result.original_width, result.original_height) == (3000, 2000)
    assert decode(result.data).shape == (2000, 3000, 3)


@pytest.mark.parametrize("fmt", ["png", "webp", "jpg"])
def test_encode_format(image_dir, fmt):
    quality = 9 if fmt == "png" else 90
    result = make_processor(image_size=128, encode_format=fmt, encode_quality=quality).process(
        read(image_dir, "astronaut.jpg")
    )
    assert sniff_format(result.data) == fmt
    assert decode(result.data).shape == (128, 128, 3)


def test_png_output_is_lossless_for_resize_mode_no(image_dir):
    data = read(image_dir, "tiny.png")
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=3).process(data)
    np.testing.assert_array_equal(decode(result.data), decode(data))


def test_encode_quality_changes_jpeg_size(image_dir):
    data = read(image_dir, "astronaut.jpg")
    low = make_processor(encode_quality=10).process(data).data
    high = make_processor(encode_quality=95).process(data).data
    assert len(low) < len(high)


# -- decoding variants ---------------------------------------------------------------


def test_exif_orientation_applied_for_jpeg(image_dir):
    data = read(image_dir, "exif_rotated.jpg")
    result = make_processor(resize_mode="no").process(data)
    assert (result.original_width, result.original_height) == (100, 200)
    assert (result.width, result.height) == (100, 200)
    assert decode(result.data).shape == (200, 100, 3)


def test_exif_orientation_applied_before_resize(image_dir):
    result = make_processor(image_size=50, resize_mode="keep_ratio").process(read(image_dir, "exif_rotated.jpg"))
    assert (result.original_width, result.original_height) == (100, 200)
    assert (result.width, result.height) == (50, 100)


def test_exif_orientation_pixels_are_rotated_clockwise():
    # left half black, right half white, stored 200x100; orientation 6 = rotate 90 CW
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 100:] = 255
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=1).process(jpeg_with_exif(img, 6))
    out = decode(result.data)
    assert out.shape == (200, 100, 3)
    # after a clockwise turn the stored left edge is at the top
    assert out[:90].mean() < 20
    assert out[110:].mean() > 235


def test_alpha_composited_on_white(image_dir):
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=1).process(
        read(image_dir, "alpha.png")
    )
    out = decode(result.data)
    assert out.shape == (120, 160, 3)
    opaque, transparent = out[:, :80].astype(int), out[:, 80:].astype(int)
    assert (np.abs(transparent - 255) <= 2).all()
    assert (np.abs(opaque - np.array([0, 0, 255])) <= 2).all()


def test_alpha_composited_on_white_through_jpeg(image_dir):
    result = make_processor(resize_mode="no").process(read(image_dir, "alpha.png"))
    out = decode(result.data).astype(int)
    assert out.shape == (120, 160, 3)
    # away from the edge, where JPEG ringing does not reach
    assert np.abs(out[:, 100:] - 255).max() <= 8
    assert np.abs(out[:, :60] - np.array([0, 0, 255])).max() <= 8


def test_half_transparent_pixels_blend_with_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:] = (0, 0, 0, 128)  # half-transparent black
    ok, enc = cv2.imencode(".png", rgba)
    assert ok
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=1).process(enc.tobytes())
    out = decode(result.data)
    # 0 * 128/255 + 255 * (1 - 128/255) = 127
    assert (out == 127).all()


def test_grayscale_jpeg_gives_three_channels(image_dir):
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=1).process(
        read(image_dir, "gray.jpg")
    )
    out = decode(result.data)
    assert out.shape == (200, 300, 3)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
    np.testing.assert_array_equal(out[:, :, 1], out[:, :, 2])


def test_grayscale_png_gives_three_channels(image_dir):
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=1).process(
        read(image_dir, "camera.png")
    )
    out = decode(result.data)
    assert out.shape == (360, 360, 3)
    np.testing.assert_array_equal(out[:, :, 0], decode(read(image_dir, "camera.png")))


def test_16_bit_png(image_dir):
    data = read(image_dir, "deep.png")
    assert decode(data).dtype == np.uint16
    result = make_processor(resize_mode="no", encode_format="png", encode_quality=1).process(data)
    assert (result.width, result.height) == (64, 48)
    out = decode(result.data)
    assert out.dtype == np.uint8
    assert out.shape == (48, 64, 3)
    # the file holds 8-bit values * 257, so the top byte is the original value
    np.testing.assert_array_equal(out, (decode(data) >> 8).astype(np.uint8))


def test_16_bit_png_resized(image_dir):
    result = make_processor(image_size=128, resize_mode="border").process(read(image_dir, "deep.png"))
    assert (result.width, result.height) == (128, 128)
    assert decode(result.data).shape == (128, 128, 3)


def test_webp_input(image_dir):
    result = make_processor(image_size=160, resize_mode="keep_ratio_largest").process(read(image_dir, "pic.webp"))
    assert (result.original_width, result.original_height) == (320, 240)
    assert (result.width, result.height) == (160, 120)
    assert sniff_format(result.data) == "jpg"


# -- filters -----------------------------------------------------------------------


def test_min_image_size(image_dir):
    proc = make_processor(min_image_size=11)
    with pytest.raises(ImageError, match="^image too small$"):
        proc.process(read(image_dir, "tiny.png"))  # 12x10: smaller side 10


def test_min_image_size_boundary_passes(image_dir):
    result = make_processor(min_image_size=10, image_size=32).process(read(image_dir, "tiny.png"))
    assert (result.width, result.height) == (32, 32)


def test_max_image_area(image_dir):
    with pytest.raises(ImageError, match="^image area too large$"):
        make_processor(max_image_area=119).process(read(image_dir, "tiny.png"))  # 120 pixels
    result = make_processor(max_image_area=120, resize_mode="no").process(read(image_dir, "tiny.png"))
    assert (result.width, result.height) == (12, 10)


def test_max_aspect_ratio(image_dir):
    with pytest.raises(ImageError, match="^aspect ratio too large$"):
        make_processor(max_aspect_ratio=99).process(read(image_dir, "wide.jpg"))  # 2000x20 = 100
    result = make_processor(max_aspect_ratio=100, image_size=64).process(read(image_dir, "wide.jpg"))
    assert (result.width, result.height) == (64, 64)


def test_max_aspect_ratio_uses_displayed_orientation(image_dir):
    # 100x200 either way: ratio 2
    with pytest.raises(ImageError, match="aspect ratio too large"):
        make_processor(max_aspect_ratio=1.9).process(read(image_dir, "exif_rotated.jpg"))


# -- decoding errors ------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"this is not an image", b"<html><body>404</body></html>", b"\x00" * 100])
def test_non_image_bytes(data):
    with pytest.raises(ImageError) as info:
        make_processor().process(data)
    assert str(info.value).startswith("image decoding error")


def test_empty_bytes():
    with pytest.raises(ImageError) as info:
        make_processor().process(b"")
    assert str(info.value).startswith("image decoding error")


@pytest.mark.parametrize("keep", [3, 20, 200, "sos"])
def test_corrupted_jpeg(image_dir, keep):
    data = read(image_dir, "astronaut.jpg")
    n = data.find(b"\xff\xda") + 20 if keep == "sos" else keep
    bad = data[:n] + b"\x00" * (len(data) - n)
    assert sniff_format(bad) == "jpg"
    with pytest.raises(ImageError) as info:
        make_processor().process(bad)
    assert str(info.value).startswith("image decoding error")


def test_truncated_png(image_dir):
    data = read(image_dir, "camera.png")
    with pytest.raises(ImageError, match="^image decoding error"):
        make_processor().process(data[:40])


# -- re-encoding options ------------------------------------------------------------------


def test_skip_reencode_returns_original_jpeg_bytes(image_dir):
    data = read(image_dir, "chelsea.jpg")
    result = make_processor(resize_mode="no", skip_reencode=True).process(data)
    assert result.data == data
    assert (result.width, result.height, result.original_width, result.original_height) == (360, 239, 360, 239)


def test_skip_reencode_still_reencodes_when_resizing(image_dir):
    data = read(image_dir, "chelsea.jpg")
    result = make_processor(image_size=128, resize_mode="border", skip_reencode=True).process(data)
    assert result.data != data
    assert (result.width, result.height) == (128, 128)
    assert decode(result.data).shape == (128, 128, 3)


def test_skip_reencode_still_reencodes_when_format_differs(image_dir):
    data = read(image_dir, "tiny.png")
    result = make_processor(resize_mode="no", skip_reencode=True).process(data)
    assert result.data != data
    assert sniff_format(result.data) == "jpg"


def test_skip_reencode_with_png_target_keeps_png(image_dir):
    data = read(image_dir, "tiny.png")
    result = make_processor(resize_mode="no", skip_reencode=True, encode_format="png", encode_quality=9).process(data)
    assert result.data == data


def test_without_skip_reencode_jpeg_is_reencoded(image_dir):
    data = read(image_dir, "chelsea.jpg")
    result = make_processor(resize_mode="no").process(data)
    assert result.data != data
    assert decode(result.data).shape == (239, 360, 3)


@pytest.mark.parametrize("data", [b"not an image at all", None])
def test_disable_all_reencoding_returns_original_bytes(image_dir, data):
    data = data if data is not None else read(image_dir, "big.jpg")
    result = make_processor(disable_all_reencoding=True, image_size=64).process(data)
    assert result == ProcessedImage(data, None, None, None, None, sniff_format(data))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("astronaut.jpg", {}),
        ("alpha.png", {"encode_format": "webp"}),
        ("pic.webp", {"resize_mode": "center_crop", "image_size": 100}),
        ("deep.png", {"encode_format": "png", "encode_quality": 6}),
    ],
)
def test_processing_is_deterministic(image_dir, name, options):
    data = read(image_dir, name)
    first = make_processor(**options).process(data)
    second = make_processor(**options).process(data)
    again = make_processor(**options).process(data)
    assert first == second == again


# -- EXIF -----------------------------------------------------------------------------


def test_extract_exif_of_rotated_jpeg(image_dir):
    text = exif_of(read(image_dir, "exif_rotated.jpg"))
    tags = json.loads(text)
    assert isinstance(tags, dict)
    assert tags["Image Make"] == "spark_img2ds"
    assert "Image Orientation" in tags
    assert "90" in tags["Image Orientation"]


def test_extract_exif_custom_make():
    img = np.full((8, 8, 3), 100, np.uint8)
    ok, enc = cv2.imencode(".jpg", img)
    assert ok
    data = enc.tobytes()
    data = data[:2] + exif_segment(1, make="Canon") + data[2:]
    tags = json.loads(exif_of(data))
    assert tags["Image Make"] == "Canon"
    assert tags["Image Orientation"] == "Horizontal (normal)"


@pytest.mark.parametrize("name", ["astronaut.jpg", "big.jpg", "gray.jpg"])
def test_extract_exif_without_exif_is_empty_object(image_dir, name):
    assert exif_of(read(image_dir, name)) == "{}"


@pytest.mark.parametrize("name", ["camera.png", "pic.webp"])
def test_extract_exif_of_other_formats_without_exif(image_dir, name):
    assert exif_of(read(image_dir, name)) == "{}"


def test_extract_exif_of_non_image_is_empty_object():
    assert exif_of(b"hello") == "{}"
    assert exif_of(b"") == "{}"


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        bytes(range(30)),
        b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 20,
        b"\xff" * 64,
    ],
)
def test_extract_exif_garbage_after_marker_is_empty_object(image_dir, garbage):
    data = with_app1(read(image_dir, "astronaut.jpg"), b"Exif\x00\x00" + garbage)
    assert has_exif(data, "jpg")
    assert exif_of(data) == "{}"


@pytest.mark.parametrize("prefix", [b"", b"II*\x00", b"MM\x00*"])
def test_extract_exif_random_garbage_is_empty_object(image_dir, prefix):
    jpeg = read(image_dir, "astronaut.jpg")
    rng = random.Random(1234)
    for _ in range(40):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        assert exif_of(with_app1(jpeg, b"Exif\x00\x00" + prefix + garbage)) == "{}"


@pytest.mark.parametrize("cut", [12, 16, 30, 40])
def test_extract_exif_truncated_exif_segment_does_not_raise(image_dir, cut):
    segment = exif_segment(6)
    jpeg = read(image_dir, "astronaut.jpg")
    # the file ends inside the EXIF block
    data = jpeg[:2] + segment[:cut]
    assert has_exif(data, "jpg")
    tags = json.loads(exif_of(data))
    assert isinstance(tags, dict)
    if cut <= 16:  # not even the TIFF header is complete
        assert tags == {}


def test_has_exif(image_dir):
    rotated = read(image_dir, "exif_rotated.jpg")
    assert has_exif(rotated, "jpg") is True
    assert has_exif(read(image_dir, "astronaut.jpg"), "jpg") is False
    assert has_exif(read(image_dir, "camera.png"), "png") is False
    assert has_exif(read(image_dir, "pic.webp"), "webp") is False
    assert has_exif(b"\x89PNG\r\n\x1a\n....eXIf....", "png") is True
    assert has_exif(b"RIFF\x00\x00\x00\x00WEBPVP8XEXIF", "webp") is True
    assert has_exif(b"II*\x00", "tiff") is True
    assert has_exif(rotated, None) is False
    assert has_exif(b"GIF89a", "gif") is False


def test_has_exif_only_looks_at_the_jpeg_head():
    data = b"\xff\xd8\xff" + b"\x00" * 70000 + b"Exif\x00\x00"
    assert has_exif(data, "jpg") is False


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def test_has_exif_finds_the_app1_segment_among_other_jpeg_segments():
    data = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1].tobytes()
    assert data[2:4] == b"\xff\xe0"  # OpenCV writes a JFIF APP0 first
    after_app0 = 4 + int.from_bytes(data[4:6], "big")
    with_exif = data[:after_app0] + _segment(0xE2, b"ICC_PROFILE\x00") + exif_segment(1) + data[after_app0:]
    assert has_exif(with_exif, "jpg") is True
    assert exif_of(with_exif) != "{}"


def test_has_exif_ignores_exif_bytes_outside_an_app1_segment():
    data = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1].tobytes()
    commented = data[:2] + _segment(0xFE, b"see Exif\x00\x00 below") + data[2:]
    assert has_exif(commented, "jpg") is False


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_has_exif_walks_png_chunks_before_and_after_the_image_data():
    png = cv2.imencode(".png", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    iend = png.rindex(b"IEND") - 4
    exif = _png_chunk(b"eXIf", exif_segment(1)[10:])  # the TIFF block of the JPEG segment
    assert has_exif(png, "png") is False
    assert has_exif(png[:iend] + exif + png[iend:], "png") is True
    fake = png[:iend] + _png_chunk(b"tEXt", b"Comment\x00eXIf is only text here") + png[iend:]
    assert has_exif(fake, "png") is False


def test_has_exif_searches_files_whose_structure_does_not_parse():
    assert has_exif(b"\xff\xd8\xff\xe0\x00\x04ab" + b"junk Exif\x00\x00", "jpg") is True
    assert has_exif(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x01IHDR" + b"eXIf", "png") is True


# -- hashing --------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha512"])
def test_hash_bytes_matches_hashlib(image_dir, algorithm):
    data = read(image_dir, "astronaut.jpg")
    assert hash_bytes(data, algorithm) == hashlib.new(algorithm, data).hexdigest()


def test_hash_bytes_known_values():
    assert hash_bytes(b"", "md5") == "d41d8cd98f00b204e9800998ecf8427e"
    assert hash_bytes(b"abc", "sha256") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_bytes(b"abc", "sha512").startswith("ddaf35a193617aba")
    assert len(hash_bytes(b"abc", "sha512")) == 128
