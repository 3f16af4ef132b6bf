"""Blurring boxes of an image before it is resized (img2dataset's bbox_col), and reading the boxes of a row.

A box is [x0, y0, x1, y1], relative to the image (0 to 1). As img2dataset does, each box
grows by a tenth of its larger side, the Gaussian's sigma is a tenth of the largest box
side (kernel 2*ceil(4*sigma)+1), and the blurred image is blended in through the blurred
mask, so the edges fade. The work is done on the region the boxes and the kernel reach.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np


class BoxError(ValueError):
    """A row's bbox value is not a list of [x0, y0, x1, y1] boxes inside the image."""


def parse_boxes(value: Any) -> list[tuple[float, float, float, float]]:
    """The boxes of a row: a list of 4-number lists (a JSON string is read first); BoxError says what is wrong."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise BoxError("bbox is not a JSON list of [x0, y0, x1, y1] boxes") from None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise BoxError("bbox must be a list of [x0, y0, x1, y1] boxes")
    boxes = []
    for box in value:
        if not isinstance(box, Sequence) or len(box) != 4:
            raise BoxError("each bbox must have 4 numbers: [x0, y0, x1, y1]")
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise BoxError("bbox values must be numbers") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise BoxError("bbox values must be finite")
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise BoxError("bbox must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (relative to the image)")
        boxes.append((x0, y0, x1, y1))
    return boxes


def blur_boxes(img: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """img with the boxes blurred (a new array; img itself is not changed)."""
    if not boxes:
        return img
    height, width = img.shape[:2]
    mask = np.zeros((height, width), np.float32)
    largest = 0
    for x0, y0, x1, y1 in boxes:
        left, top, right, bottom = int(x0 * width), int(y0 * height), int(x1 * width), int(y1 * height)
        side = max(right - left, bottom - top)
        largest = max(largest, side)
        grow = int(0.1 * side)
        mask[max(0, top - grow) : bottom + grow, max(0, left - grow) : right + grow] = 1.0
    sigma = 0.1 * largest
    if sigma <= 0:
        return img
    ksize = int(2 * math.ceil(4 * sigma)) + 1
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    reach = ksize // 2
    top, bottom = max(0, rows[0] - reach), min(height, rows[-1] + 1 + reach)
    left, right = max(0, cols[0] - reach), min(width, cols[-1] + 1 + reach)
    region = img[top:bottom, left:right].astype(np.float32)
    weight = cv2.GaussianBlur(mask[top:bottom, left:right], (ksize, ksize), sigma)
    blurred = cv2.GaussianBlur(region, (ksize, ksize), sigma)
    if region.ndim == 3:
        weight = weight[:, :, None]
    out = img.copy()
    mixed = region * (1.0 - weight) + blurred * weight
    out[top:bottom, left:right] = np.clip(np.rint(mixed), 0, np.iinfo(img.dtype).max).astype(img.dtype)
    return out
