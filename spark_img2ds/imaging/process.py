"""Decode, check, resize and encode one image.

Runs inside the download threads: OpenCV releases the GIL, so decoding in
the threads uses the cores without a process per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spark_img2ds.imaging.blur import blur_boxes
from spark_img2ds.imaging.formats import PIXELS_MESSAGE, HeaderError, declared_size, sniff_format
from spark_img2ds.imaging.options import ImageOptions
from spark_img2ds.imaging.resize import REDUCING_GAP, apply_plan, decode_reduction, plan_resize

REDUCED_COLOR = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
REDUCED_GREY = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
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
    source_format: str | None  # of the input bytes, as sniff_format says


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


def turned_by_decoder(width: int, height: int, decoded_shape: tuple[int, ...], factor: int) -> bool:
    """Whether OpenCV turned a JPEG of this header size by its EXIF orientation: the decoded
    (reduced by factor) sides are the header's, swapped."""
    return width != height and tuple(decoded_shape[:2]) == (-(-width // factor), -(-height // factor))


def check_dimensions(width: int, height: int, opts: ImageOptions) -> None:
    """ImageError if an image of this displayed size is outside min_image_size, max_image_area, max_aspect_ratio."""
    if min(width, height) < opts.min_image_size:
        raise ImageError("image too small")
    if width * height > opts.max_image_area:
        raise ImageError("image area too large")
    if max(width, height) / min(width, height) > opts.max_aspect_ratio:
        raise ImageError("aspect ratio too large")


class ImageProcessor:
    """Turns downloaded bytes into the stored image under one ImageOptions."""

    def __init__(self, options: ImageOptions) -> None:
        self.options = options
        self.ext = "." + options.encode_format
        self.params = [int(_ENCODE_PARAM[options.encode_format]), int(options.encode_quality)]

    def decode(self, data: bytes, fmt: str | None, reduce: int = 1) -> np.ndarray:
        """8-bit BGR pixels; JPEG goes through IMREAD_COLOR (or a reduced variant), which also
        applies EXIF orientation. fmt: sniff_format(data)."""
        buf = np.frombuffer(data, np.uint8)
        flag = REDUCED_COLOR.get(reduce, cv2.IMREAD_COLOR) if fmt == "jpg" else cv2.IMREAD_UNCHANGED
        try:
            img = cv2.imdecode(buf, flag)
        except cv2.error:
            raise ImageError("image decoding error") from None
        if img is None or img.size == 0:
            raise ImageError(
                "image decoding error: not a supported image format" if fmt is None else "image decoding error"
            )
        return img if fmt == "jpg" else _to_bgr8(img)

    def _decode_sized(self, data: bytes, fmt: str | None) -> tuple[np.ndarray, int, int]:
        """Pixels and the original (displayed) width and height.

        The header's size is checked before any decode, so a small file declaring a huge
        image is refused without allocating it; JPEGs are decoded reduced when the resize
        allows it.
        """
        opts = self.options
        try:
            w0, h0 = declared_size(data, fmt, opts.max_image_pixels)
        except HeaderError as err:
            reason = str(err)
            raise ImageError(reason if reason == PIXELS_MESSAGE else f"image decoding error: {reason}") from None
        if w0 * h0 > opts.max_image_area:
            raise ImageError("image area too large")
        gap = 1.0 if opts.fast_decode else REDUCING_GAP
        factor = decode_reduction(w0, h0, opts.image_size, opts.resize_mode, gap) if fmt == "jpg" else 1
        img = self.decode(data, fmt, factor)
        if factor == 1:
            return img, img.shape[1], img.shape[0]
        return (img, h0, w0) if turned_by_decoder(w0, h0, img.shape, factor) else (img, w0, h0)

    def process(self, data: bytes, boxes: list | None = None) -> ProcessedImage:
        """The stored image of downloaded bytes; boxes (relative [x0, y0, x1, y1]) are blurred before resizing."""
        opts = self.options
        fmt = sniff_format(data)
        if opts.disable_all_reencoding:
            return ProcessedImage(data, None, None, None, None, fmt)
        img, width, height = self._decode_sized(data, fmt)
        check_dimensions(width, height, opts)
        plan = plan_resize(width, height, opts.image_size, opts.resize_mode, opts.resize_only_if_bigger)
        if opts.skip_reencode and not plan.changes_pixels and fmt == opts.encode_format and not boxes:
            return ProcessedImage(data, width, height, width, height, fmt)
        if boxes:
            img = blur_boxes(img, boxes)
        out = apply_plan(img, plan, opts.upscale_interpolation, opts.downscale_interpolation, opts.fast_downscale)
        try:
            ok, encoded = cv2.imencode(self.ext, out, self.params)
        except cv2.error:
            raise ImageError("image encoding error") from None
        if not ok:
            raise ImageError("image encoding error")
        return ProcessedImage(encoded.tobytes(), out.shape[1], out.shape[0], width, height, fmt)
