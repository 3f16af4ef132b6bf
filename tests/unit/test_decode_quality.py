"""Images as good as img2dataset's: every resize mode, sizes just above 1x, 2x, 4x and 8x the target, >= 30 dB.

The reference is what img2dataset does: a full decode, then an area resize with the
same geometry. Photos are tiled at their own resolution, so large images keep the
detail density of real ones (a stretched photo would be too easy).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.process import ImageProcessor
from spark_img2ds.imaging.resize import apply_plan, plan_resize

DATA = Path(__file__).resolve().parents[2] / "spark_img2ds" / "demo" / "data"
TARGET = 256
SIDES = [TARGET + 4, 2 * TARGET + 6, 4 * TARGET + 10, 8 * TARGET + 20]
MODES = ["border", "keep_ratio", "keep_ratio_largest", "center_crop"]


def collage(width: int, height: int, seed: int) -> bytes:
    photos = [cv2.imread(str(p)) for p in sorted(DATA.glob("*.jpg"))]
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), np.uint8)
    y = 0
    while y < height:
        x, row_h = 0, 0
        while x < width:
            photo = photos[int(rng.integers(len(photos)))]
            tile = photo[: height - y, : width - x]
            canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
            x += tile.shape[1]
            row_h = max(row_h, tile.shape[0])
        y += row_h
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def reference(data: bytes, mode: str) -> np.ndarray:
    full = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    plan = plan_resize(full.shape[1], full.shape[0], TARGET, mode, False)
    return apply_plan(full, plan, "lanczos", "area", fast_downscale=False)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


CASES = [(side, portrait, mode) for side, portrait, mode in itertools.product(SIDES, (False, True), MODES)]


def score(options: ImageOptions, side: int, portrait: bool, mode: str) -> float:
    width, height = (side, side * 3 // 4) if not portrait else (side * 3 // 4, side)
    data = collage(width, height, seed=side)
    out = ImageProcessor(options).process(data).data
    return psnr(cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR), reference(data, mode))


@pytest.mark.parametrize(("side", "portrait", "mode"), CASES)
def test_default_decoding_stays_within_30_db_of_a_full_decode(side, portrait, mode):
    options = ImageOptions(image_size=TARGET, resize_mode=mode, encode_format="png", encode_quality=1)
    assert score(options, side, portrait, mode) >= 30.0


def test_fast_decode_trades_some_of_that_quality_for_speed():
    """Today's fast setting falls below the bound on the same images (measured: 26-29 dB at 8x, border)."""
    exact = ImageOptions(image_size=TARGET, encode_format="png", encode_quality=1)
    fast = ImageOptions(image_size=TARGET, encode_format="png", encode_quality=1, fast_decode=True)
    worst = [min(score(o, s, p, "border") for s in SIDES[1:] for p in (False, True)) for o in (exact, fast)]
    assert worst[0] >= 30.0 > worst[1]
