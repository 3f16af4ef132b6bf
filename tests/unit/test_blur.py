"""bbox_col: boxes are blurred (the region changes, the rest does not), malformed boxes fail clearly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spark_img2ds.imaging.blur import BoxError, blur_boxes, parse_boxes
from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.process import ImageProcessor


def checkerboard(width: int = 400, height: int = 300, cell: int = 4) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    grey = (((x // cell) + (y // cell)) % 2 * 255).astype(np.uint8)
    return np.dstack([grey] * 3)


def test_the_box_is_blurred_and_pixels_far_from_it_are_untouched():
    img = checkerboard()
    out = blur_boxes(img, [(0.25, 0.25, 0.5, 0.5)])  # x 100-200, y 75-150
    inside = out[90:140, 110:190].astype(float)
    assert inside.std() < 0.25 * img[90:140, 110:190].astype(float).std()  # the checkerboard is smoothed away
    assert np.array_equal(out[250:, 300:], img[250:, 300:])  # far corner: the same pixels
    assert np.array_equal(out[:, :30], img[:, :30])
    assert np.array_equal(img, checkerboard())  # the input array is left as it was


def test_blurring_happens_before_the_resize_in_the_image_path():
    ok, data = cv2.imencode(".png", checkerboard())
    assert ok
    options = ImageOptions(image_size=100, resize_mode="keep_ratio", encode_format="png", encode_quality=1)
    processor = ImageProcessor(options)
    plain = cv2.imdecode(np.frombuffer(processor.process(data.tobytes()).data, np.uint8), cv2.IMREAD_COLOR)
    blurred = processor.process(data.tobytes(), [(0.0, 0.0, 0.5, 0.5)]).data
    blurred = cv2.imdecode(np.frombuffer(blurred, np.uint8), cv2.IMREAD_COLOR)
    assert plain.shape == blurred.shape == (100, 133, 3)
    assert not np.array_equal(plain[:40, :55], blurred[:40, :55])
    assert np.array_equal(plain[80:, 110:], blurred[80:, 110:])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([[0.1, 0.2, 0.3, 0.4]], [(0.1, 0.2, 0.3, 0.4)]),
        ("[[0, 0, 1, 1]]", [(0.0, 0.0, 1.0, 1.0)]),
        (None, []),
        ("", []),
        ([], []),
    ],
)
def test_boxes_are_read_from_lists_and_json_text(value, expected):
    assert parse_boxes(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "not a JSON list"),
        ([[0.1, 0.2, 0.3]], "4 numbers"),
        ([[0.5, 0.2, 0.3, 0.4]], "0 <= x0 < x1 <= 1"),
        ([[0.1, 0.2, 1.3, 0.4]], "0 <= x0 < x1 <= 1"),
        ([["a", 0, 1, 1]], "must be numbers"),
        ([[float("nan"), 0, 1, 1]], "finite"),
        (42, "must be a list"),
    ],
)
def test_malformed_boxes_say_what_is_wrong(value, message):
    with pytest.raises(BoxError, match=message):
        parse_boxes(value)
