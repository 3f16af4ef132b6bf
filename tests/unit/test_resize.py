"""Resize geometry (plan_resize) and its application with real OpenCV (apply_plan)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spark_img2ds.imaging.resize import ResizePlan, apply_plan, interpolation_for, plan_resize

WHITE = np.array([255, 255, 255], np.uint8)


def output_size(plan: ResizePlan, width: int, height: int) -> tuple[int, int]:
    """What applying the plan to a width x height image gives, computed from the plan alone."""
    w, h = plan.size or (width, height)
    if plan.crop:
        w, h = plan.crop[2], plan.crop[3]
    if plan.pad:
        w, h = w + plan.pad[2] + plan.pad[3], h + plan.pad[0] + plan.pad[1]
    return w, h


def pattern(width: int, height: int) -> np.ndarray:
    """A BGR image where every pixel encodes its own position (no white pixels)."""
    ys, xs = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = xs % 200
    img[:, :, 1] = ys % 200
    img[:, :, 2] = (xs // 200 + 7 * (ys // 200)) % 200
    return img


# -- mode "no" ---------------------------------------------------------------


@pytest.mark.parametrize("only_if_bigger", [False, True])
@pytest.mark.parametrize(("w", "h"), [(3000, 2000), (10, 12), (256, 256)])
def test_mode_no_never_changes_pixels(w, h, only_if_bigger):
    plan = plan_resize(w, h, 256, "no", only_if_bigger)
    assert plan == ResizePlan()
    assert not plan.changes_pixels
    assert output_size(plan, w, h) == (w, h)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown resize mode"):
        plan_resize(100, 100, 64, "stretch", False)


# -- keep_ratio: shorter side to image_size ------------------------------------


@pytest.mark.parametrize("only_if_bigger", [False, True])
def test_keep_ratio_downscale(only_if_bigger):
    plan = plan_resize(3000, 2000, 256, "keep_ratio", only_if_bigger)
    assert plan == ResizePlan(size=(384, 256), downscale=True, crop=None, pad=None)
    assert output_size(plan, 3000, 2000) == (384, 256)


def test_keep_ratio_downscale_portrait():
    plan = plan_resize(2000, 3000, 256, "keep_ratio", False)
    assert plan.size == (256, 384)
    assert plan.downscale is True
    assert output_size(plan, 2000, 3000) == (256, 384)


def test_keep_ratio_upscale():
    plan = plan_resize(120, 80, 256, "keep_ratio", False)
    assert plan == ResizePlan(size=(384, 256), downscale=False, crop=None, pad=None)
    assert output_size(plan, 120, 80) == (384, 256)


def test_keep_ratio_upscale_skipped_when_only_if_bigger():
    plan = plan_resize(120, 80, 256, "keep_ratio", True)
    assert not plan.changes_pixels
    assert output_size(plan, 120, 80) == (120, 80)


def test_keep_ratio_uses_shorter_side_for_only_if_bigger():
    # longer side 400 > 256, but the shorter side 200 is not: nothing to do
    plan = plan_resize(400, 200, 256, "keep_ratio", True)
    assert not plan.changes_pixels
    assert output_size(plan, 400, 200) == (400, 200)


def test_keep_ratio_already_at_size_changes_nothing():
    plan = plan_resize(400, 256, 256, "keep_ratio", False)
    assert plan.size is None
    assert not plan.changes_pixels
    assert output_size(plan, 400, 256) == (400, 256)


# -- keep_ratio_largest: longer side to image_size -------------------------------


def test_keep_ratio_largest_downscale():
    plan = plan_resize(3000, 2000, 256, "keep_ratio_largest", False)
    # 2000 * 256 / 3000 = 170.67 -> 171
    assert plan == ResizePlan(size=(256, 171), downscale=True, crop=None, pad=None)
    assert output_size(plan, 3000, 2000) == (256, 171)


def test_keep_ratio_largest_upscale():
    plan = plan_resize(160, 120, 256, "keep_ratio_largest", False)
    assert plan == ResizePlan(size=(256, 192), downscale=False, crop=None, pad=None)


def test_keep_ratio_largest_upscale_skipped_when_only_if_bigger():
    assert not plan_resize(160, 120, 256, "keep_ratio_largest", True).changes_pixels


def test_keep_ratio_largest_uses_longer_side_for_only_if_bigger():
    # shorter side 200 < 256 but longer side 400 > 256: it is a downscale
    plan = plan_resize(400, 200, 256, "keep_ratio_largest", True)
    assert plan.size == (256, 128)
    assert plan.downscale is True


# -- center_crop: shorter side to image_size, then the centre square -------------


@pytest.mark.parametrize("only_if_bigger", [False, True])
def test_center_crop_downscale_landscape(only_if_bigger):
    plan = plan_resize(3000, 2000, 256, "center_crop", only_if_bigger)
    assert plan == ResizePlan(size=(384, 256), downscale=True, crop=(64, 0, 256, 256), pad=None)
    assert output_size(plan, 3000, 2000) == (256, 256)


def test_center_crop_downscale_portrait():
    plan = plan_resize(2000, 3000, 256, "center_crop", False)
    assert plan.size == (256, 384)
    assert plan.crop == (0, 64, 256, 256)
    assert output_size(plan, 2000, 3000) == (256, 256)


def test_center_crop_upscale():
    plan = plan_resize(120, 80, 256, "center_crop", False)
    assert plan == ResizePlan(size=(384, 256), downscale=False, crop=(64, 0, 256, 256), pad=None)
    assert output_size(plan, 120, 80) == (256, 256)


def test_center_crop_upscale_skipped_when_only_if_bigger():
    plan = plan_resize(120, 80, 256, "center_crop", True)
    assert not plan.changes_pixels
    assert output_size(plan, 120, 80) == (120, 80)


def test_center_crop_without_scaling_crops_odd_margin_down():
    plan = plan_resize(301, 200, 200, "center_crop", False)
    assert plan.size is None
    assert plan.crop == (50, 0, 200, 200)
    assert output_size(plan, 301, 200) == (200, 200)


def test_center_crop_square_needs_no_crop():
    plan = plan_resize(512, 512, 256, "center_crop", False)
    assert plan == ResizePlan(size=(256, 256), downscale=True, crop=None, pad=None)


# -- border: longer side to image_size, then pad to a white square ----------------


@pytest.mark.parametrize("only_if_bigger", [False, True])
def test_border_downscale_landscape(only_if_bigger):
    plan = plan_resize(3000, 2000, 256, "border", only_if_bigger)
    # 171 high: 85 rows of padding, 42 on top and 43 at the bottom
    assert plan == ResizePlan(size=(256, 171), downscale=True, crop=None, pad=(42, 43, 0, 0))
    assert output_size(plan, 3000, 2000) == (256, 256)


def test_border_downscale_portrait():
    plan = plan_resize(2000, 3000, 256, "border", False)
    assert plan.size == (171, 256)
    assert plan.pad == (0, 0, 42, 43)
    assert output_size(plan, 2000, 3000) == (256, 256)


def test_border_upscale():
    plan = plan_resize(160, 120, 256, "border", False)
    assert plan == ResizePlan(size=(256, 192), downscale=False, crop=None, pad=(32, 32, 0, 0))
    assert output_size(plan, 160, 120) == (256, 256)


def test_border_upscale_skipped_when_only_if_bigger_means_no_padding_either():
    plan = plan_resize(160, 120, 256, "border", True)
    assert plan.pad is None
    assert not plan.changes_pixels
    assert output_size(plan, 160, 120) == (160, 120)


def test_border_at_size_pads_only():
    plan = plan_resize(100, 256, 256, "border", False)
    assert plan.size is None
    assert plan.pad == (0, 0, 78, 78)
    assert plan.changes_pixels
    assert output_size(plan, 100, 256) == (256, 256)


def test_border_square_at_size_changes_nothing():
    plan = plan_resize(256, 256, 256, "border", False)
    assert not plan.changes_pixels
    assert output_size(plan, 256, 256) == (256, 256)


# -- extreme aspect ratios: no side rounds to zero (fixed img2dataset defect) -----


def test_border_extreme_wide_keeps_one_pixel_row():
    plan = plan_resize(10000, 1, 256, "border", False)
    assert plan.size == (256, 1)
    assert plan.pad == (127, 128, 0, 0)
    assert output_size(plan, 10000, 1) == (256, 256)


def test_border_extreme_tall_keeps_one_pixel_column():
    plan = plan_resize(1, 10000, 256, "border", False)
    assert plan.size == (1, 256)
    assert plan.pad == (0, 0, 127, 128)
    assert output_size(plan, 1, 10000) == (256, 256)


def test_keep_ratio_largest_extreme_never_zero():
    assert plan_resize(10000, 1, 256, "keep_ratio_largest", False).size == (256, 1)
    assert plan_resize(3, 5000, 64, "keep_ratio_largest", False).size == (1, 64)


def test_apply_border_on_extreme_aspect_ratio():
    img = pattern(10000, 1)
    out = apply_plan(img, plan_resize(10000, 1, 256, "border", False), "lanczos", "area")
    assert out.shape == (256, 256, 3)
    assert (out[:127] == WHITE).all()
    assert (out[128:] == WHITE).all()


# -- rounding is Python's round() (half to even) ----------------------------------


def test_rounding_half_to_even():
    # 5 * 0.5 = 2.5 -> 2 (half-up would give 3); 7 * 0.5 = 3.5 -> 4
    assert plan_resize(5, 4, 2, "keep_ratio", False).size == (2, 2)
    assert plan_resize(7, 4, 2, "keep_ratio", False).size == (4, 2)
    assert plan_resize(5, 8, 4, "keep_ratio_largest", False).size == (2, 4)
    assert plan_resize(3, 8, 4, "keep_ratio_largest", False).size == (2, 4)


@pytest.mark.parametrize("mode", ["keep_ratio", "keep_ratio_largest", "center_crop", "border"])
@pytest.mark.parametrize(("w", "h"), [(3000, 2000), (2000, 3000), (641, 479), (33, 77), (2000, 20)])
def test_geometry_matches_reference_formula(mode, w, h):
    size = 256
    side = min(w, h) if mode in ("keep_ratio", "center_crop") else max(w, h)
    scale = size / side
    expected = (max(1, round(w * scale)), max(1, round(h * scale)))
    plan = plan_resize(w, h, size, mode, False)
    assert plan.size == expected
    assert plan.downscale is (side > size)
    out = output_size(plan, w, h)
    if mode in ("center_crop", "border"):
        assert out == (size, size)
    else:
        assert out == expected


# -- apply_plan on real pixels -------------------------------------------------


def test_apply_border_pads_top_and_bottom_with_white():
    img = pattern(200, 100)
    plan = plan_resize(200, 100, 200, "border", False)
    assert plan.size is None and plan.pad == (50, 50, 0, 0)
    out = apply_plan(img, plan, "lanczos", "area")
    assert out.shape == (200, 200, 3)
    assert (out[:50] == WHITE).all()
    assert (out[150:] == WHITE).all()
    np.testing.assert_array_equal(out[50:150], img)


def test_apply_border_odd_padding_goes_to_the_bottom():
    img = pattern(200, 101)
    plan = plan_resize(200, 101, 200, "border", False)
    assert plan.pad == (49, 50, 0, 0)
    out = apply_plan(img, plan, "lanczos", "area")
    assert out.shape == (200, 200, 3)
    assert (out[:49] == WHITE).all()
    assert (out[150:] == WHITE).all()
    np.testing.assert_array_equal(out[49:150], img)


def test_apply_border_pads_left_and_right_with_white():
    img = pattern(101, 200)
    out = apply_plan(img, plan_resize(101, 200, 200, "border", False), "lanczos", "area")
    assert out.shape == (200, 200, 3)
    assert (out[:, :49] == WHITE).all()
    assert (out[:, 150:] == WHITE).all()
    np.testing.assert_array_equal(out[:, 49:150], img)


def test_apply_border_with_downscale():
    img = pattern(3000, 2000)
    out = apply_plan(img, plan_resize(3000, 2000, 256, "border", False), "lanczos", "area")
    assert out.shape == (256, 256, 3)
    assert (out[:42] == WHITE).all()
    assert (out[42 + 171 :] == WHITE).all()
    expected = cv2.resize(img, (256, 171), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[42 : 42 + 171], expected)


def test_apply_center_crop_takes_the_centre():
    img = pattern(300, 200)
    out = apply_plan(img, plan_resize(300, 200, 200, "center_crop", False), "lanczos", "area")
    assert out.shape == (200, 200, 3)
    np.testing.assert_array_equal(out, img[:, 50:250])


def test_apply_center_crop_portrait_takes_the_centre():
    img = pattern(200, 301)
    out = apply_plan(img, plan_resize(200, 301, 200, "center_crop", False), "lanczos", "area")
    assert out.shape == (200, 200, 3)
    np.testing.assert_array_equal(out, img[50:250, :])


def test_apply_center_crop_after_downscale():
    img = pattern(600, 400)
    out = apply_plan(img, plan_resize(600, 400, 200, "center_crop", False), "lanczos", "area")
    assert out.shape == (200, 200, 3)
    scaled = cv2.resize(img, (300, 200), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, scaled[:, 50:250])


@pytest.mark.parametrize(
    ("mode", "w", "h", "shape"),
    [
        ("keep_ratio", 3000, 2000, (256, 384, 3)),
        ("keep_ratio_largest", 3000, 2000, (171, 256, 3)),
        ("keep_ratio", 120, 80, (256, 384, 3)),
        ("center_crop", 120, 80, (256, 256, 3)),
        ("border", 160, 120, (256, 256, 3)),
    ],
)
def test_apply_output_shape(mode, w, h, shape):
    out = apply_plan(pattern(w, h), plan_resize(w, h, 256, mode, False), "lanczos", "area")
    assert out.shape == shape
    assert out.dtype == np.uint8


def test_apply_no_plan_returns_pixels_unchanged():
    img = pattern(50, 40)
    out = apply_plan(img, plan_resize(50, 40, 256, "no", False), "lanczos", "area")
    np.testing.assert_array_equal(out, img)


def test_upscale_uses_upscale_interpolation():
    img = pattern(40, 30)
    plan = plan_resize(40, 30, 128, "keep_ratio_largest", False)
    assert plan.downscale is False and plan.size == (128, 96)
    out = apply_plan(img, plan, "nearest", "area")
    nearest = cv2.resize(img, (128, 96), interpolation=cv2.INTER_NEAREST)
    cubic = cv2.resize(img, (128, 96), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out, nearest)
    assert not np.array_equal(nearest, cubic)
    np.testing.assert_array_equal(apply_plan(img, plan, "cubic", "nearest"), cubic)


def test_downscale_uses_downscale_interpolation():
    img = pattern(400, 300)
    plan = plan_resize(400, 300, 100, "keep_ratio_largest", False)
    assert plan.downscale is True and plan.size == (100, 75)
    area = cv2.resize(img, (100, 75), interpolation=cv2.INTER_AREA)
    nearest = cv2.resize(img, (100, 75), interpolation=cv2.INTER_NEAREST)
    assert not np.array_equal(area, nearest)
    np.testing.assert_array_equal(apply_plan(img, plan, "nearest", "area"), area)
    np.testing.assert_array_equal(apply_plan(img, plan, "area", "nearest"), nearest)


@pytest.mark.parametrize(
    ("source", "target", "fast", "expected"),
    [
        ((400, 300), (256, 192), True, cv2.INTER_LINEAR),  # 1.56x: bilinear skips no pixel
        ((400, 300), (256, 192), False, cv2.INTER_AREA),
        ((512, 384), (256, 192), True, cv2.INTER_AREA),  # exactly 2x: area
        ((600, 300), (256, 128), True, cv2.INTER_AREA),  # 2.3x
        ((300, 600), (200, 290), True, cv2.INTER_AREA),  # 1.5x one way, 2.07x the other
        ((256, 192), (256, 192), True, cv2.INTER_LANCZOS4),  # not smaller: the upscale choice
    ],
)
def test_interpolation_for_area_downscale(source, target, fast, expected):
    assert interpolation_for(source, target, "lanczos", "area", fast) == expected


def test_fast_downscale_only_replaces_area():
    assert interpolation_for((400, 300), (256, 192), "lanczos", "cubic", True) == cv2.INTER_CUBIC
    assert interpolation_for((400, 300), (256, 192), "lanczos", "nearest", True) == cv2.INTER_NEAREST


def test_apply_plan_with_fast_downscale_is_bilinear_below_2x():
    img = pattern(400, 300)
    plan = plan_resize(400, 300, 256, "keep_ratio_largest", False)
    linear = cv2.resize(img, (256, 192), interpolation=cv2.INTER_LINEAR)
    area = cv2.resize(img, (256, 192), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(linear, area)
    np.testing.assert_array_equal(apply_plan(img, plan, "lanczos", "area", fast_downscale=True), linear)
    np.testing.assert_array_equal(apply_plan(img, plan, "lanczos", "area"), area)
