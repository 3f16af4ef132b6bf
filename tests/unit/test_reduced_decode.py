"""Reduced-size JPEG decoding: picked from the side the resize mode needs, and visually the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from spark_img2ds.imaging.formats import jpeg_size
from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.process import ImageError, ImageProcessor
from spark_img2ds.imaging.resize import apply_plan, decode_reduction, plan_resize
from tests.helpers.images import exif_segment

DEMO = Path(__file__).resolve().parents[2] / "spark_img2ds" / "demo" / "data"


def photo(width: int, height: int, name: str = "chelsea.jpg", progressive: bool = False) -> bytes:
    """A large, photo-like JPEG: a real photograph enlarged, with sensor-like noise."""
    img = cv2.resize(cv2.imread(str(DEMO / name)), (width, height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(1).normal(0, 6, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    return cv2.imencode(".jpg", img, params)[1].tobytes()


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    return jpeg[:2] + exif_segment(orientation) + jpeg[2:]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def full_decode_reference(data: bytes, cfg: ImageOptions) -> np.ndarray:
    """What the pipeline gives without reduced decoding: full decode, same plan, same resize."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    plan = plan_resize(img.shape[1], img.shape[0], cfg.image_size, cfg.resize_mode, cfg.resize_only_if_bigger)
    return apply_plan(img, plan, cfg.upscale_interpolation, cfg.downscale_interpolation)


@pytest.mark.parametrize(
    ("size", "image_size", "mode", "expected"),
    [
        ((2000, 500), 256, "border", 4),  # longest side 2000: 2000 // 4 = 500 >= 256, // 8 = 250 < 256
        ((2000, 500), 256, "keep_ratio_largest", 4),
        ((2000, 500), 256, "center_crop", 1),  # shortest side 500 < 512
        ((2000, 600), 256, "keep_ratio", 2),
        ((4096, 4096), 256, "border", 8),
        ((511, 300), 256, "border", 1),
        ((512, 300), 256, "border", 2),
        ((4000, 3000), 256, "no", 1),
    ],
)
def test_fast_decode_reduction_keeps_the_needed_side(size, image_size, mode, expected):
    assert decode_reduction(*size, image_size, mode, gap=1.0) == expected


@pytest.mark.parametrize(
    ("size", "mode", "expected"),
    [
        ((2000, 500), "border", 2),  # 2000 // 4 = 500 < 512: keep twice the target
        ((4096, 4096), "border", 8),
        ((4095, 4095), "border", 4),
        ((1100, 800), "keep_ratio", 1),
        ((1100, 1030), "keep_ratio", 2),
        ((1023, 300), "border", 1),
    ],
)
def test_default_reduction_keeps_twice_the_target(size, mode, expected):
    assert decode_reduction(*size, 256, mode) == expected


def test_jpeg_size_reads_the_frame_header():
    assert jpeg_size(photo(1200, 700)) == (1200, 700)
    assert jpeg_size(photo(640, 900, progressive=True)) == (640, 900)
    assert jpeg_size(with_orientation(photo(800, 600), 6)) == (800, 600)  # stored, not displayed, size


@pytest.mark.parametrize("data", [b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8" + b"\x00" * 50, b""])
def test_jpeg_size_of_damaged_headers_is_none(data):
    assert jpeg_size(data) is None


@pytest.mark.parametrize("mode", ["border", "keep_ratio", "keep_ratio_largest", "center_crop"])
@pytest.mark.parametrize(("width", "height"), [(2400, 1600), (1300, 2100), (1100, 1100)])
def test_reduced_decode_output_matches_full_decode(mode, width, height):
    cfg = ImageOptions(image_size=256, resize_mode=mode, encode_format="png", encode_quality=1)
    data = photo(width, height, progressive=width == 1300)
    assert decode_reduction(width, height, 256, mode) > 1  # the case under test really reduces
    result = ImageProcessor(cfg).process(data)
    out = cv2.imdecode(np.frombuffer(result.data, np.uint8), cv2.IMREAD_COLOR)
    reference = full_decode_reference(data, cfg)
    assert out.shape == reference.shape
    assert (result.original_width, result.original_height) == (width, height)
    assert psnr(out, reference) >= 35.0


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_reduced_decode_applies_exif_orientation_and_reports_displayed_size(orientation):
    cfg = ImageOptions(image_size=256, resize_mode="keep_ratio", encode_format="png", encode_quality=1)
    data = with_orientation(photo(2400, 1200), orientation)
    result = ImageProcessor(cfg).process(data)
    out = cv2.imdecode(np.frombuffer(result.data, np.uint8), cv2.IMREAD_COLOR)
    reference = full_decode_reference(data, cfg)
    transposed = orientation in (6, 8)
    assert (result.original_width, result.original_height) == ((1200, 2400) if transposed else (2400, 1200))
    assert (result.width, result.height) == ((256, 512) if transposed else (512, 256))
    assert out.shape == reference.shape and psnr(out, reference) >= 35.0


def test_huge_jpeg_is_refused_from_its_header_before_decoding():
    cfg = ImageOptions(image_size=256, max_image_area=1_000_000)
    with pytest.raises(ImageError, match="image area too large"):
        ImageProcessor(cfg).process(photo(1200, 1000))


@pytest.mark.parametrize(("width", "height"), [(400, 300), (300, 500), (1000, 700), (511, 511)])
def test_fast_downscale_below_2x_looks_like_area(width, height):
    """Bilinear below 2x (the usual case after a reduced decode) stays visually the same as area."""
    fast = ImageOptions(image_size=256, resize_mode="border", encode_format="png", encode_quality=1, fast_decode=True)
    exact = dataclasses.replace(fast, fast_downscale=False)
    data = photo(width, height)
    out_fast = cv2.imdecode(np.frombuffer(ImageProcessor(fast).process(data).data, np.uint8), cv2.IMREAD_COLOR)
    out_exact = cv2.imdecode(np.frombuffer(ImageProcessor(exact).process(data).data, np.uint8), cv2.IMREAD_COLOR)
    assert out_fast.shape == out_exact.shape == (256, 256, 3)
    assert not np.array_equal(out_fast, out_exact)  # the bilinear path was really taken
    assert psnr(out_fast, out_exact) >= 35.0
    assert psnr(out_fast, full_decode_reference(data, exact)) >= 35.0
