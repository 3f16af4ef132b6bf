"""Image bytes to an array: true colours at the source's real bit depth, then size, channels, scale, dtype.

Decoding keeps what the file holds: grey stays grey, alpha stays, 16 bits stay 16 bits,
palettes are expanded to their colours, CMYK JPEGs become RGB, and EXIF orientation is
applied (OpenCV does it for JPEG, we do it for PNG and WebP). The conversion then works
in RGB order at that depth: an alpha channel that goes away is composited on white, grey
is the ITU-R 601 luma, normalisation divides by the depth's maximum (255 or 65535), and
values are rounded and clipped before a cast to an integer dtype (and clipped to float16's
largest finite value, 65504, for float16).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from spark_img2ds.arrays.options import ConversionOptions
from spark_img2ds.errors import ConversionError, UnsupportedFormatError
from spark_img2ds.imaging.blur import blur_boxes
from spark_img2ds.imaging.formats import (
    HeaderError,
    declared_size,
    exif_orientation,
    jpeg_components,
    png_color_type,
    sniff_format,
)
from spark_img2ds.imaging.options import MAX_IMAGE_PIXELS
from spark_img2ds.imaging.process import REDUCED_COLOR, REDUCED_GREY, turned_by_decoder
from spark_img2ds.imaging.resize import apply_plan, decode_reduction, plan_resize

_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.swapaxes(a, 0, 1)[::-1],
}
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Pixels:
    """One decoded frame in RGB(A) order (HxW for grey, HxWx2 for grey+alpha), with what it came from."""

    data: np.ndarray
    mode: str  # L, LA, RGB or RGBA
    depth: int  # 8 or 16
    format: str
    original: tuple[int, int] = (0, 0)  # (width, height) of the full image as displayed

    @property
    def maximum(self) -> int:
        return (1 << self.depth) - 1


def decode_frames(
    data: bytes, frame: int | str = 0, max_pixels: int = MAX_IMAGE_PIXELS, resize: tuple[int, str] | None = None
) -> list[Pixels]:
    """The frame asked for (a list of one), or every frame for "all"; ConversionError with a reason otherwise.

    resize (image_size, resize_mode): a JPEG is decoded at the largest reduced scale that keeps the
    side the mode sizes by at or above image_size, as the job's image path does.
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedFormatError("not a supported image format")
    try:
        size = declared_size(data, fmt, max_pixels)
    except HeaderError as err:
        raise ConversionError(str(err)) from None
    buf = np.frombuffer(data, np.uint8)
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if fmt == "jpg" else cv2.IMREAD_UNCHANGED
    factor = 1
    if fmt == "jpg" and frame == 0 and resize is not None:
        factor = decode_reduction(size[0], size[1], resize[0], resize[1])
        grey = jpeg_components(data) == 1
        flags = (REDUCED_GREY if grey else REDUCED_COLOR).get(factor, flags)
    try:
        if frame == 0:
            images = [cv2.imdecode(buf, flags)]
        else:
            ok, images = cv2.imdecodemulti(buf, flags)
            images = list(images) if ok else [None]
    except cv2.error:
        raise ConversionError(f"{fmt} decoding error") from None
    if any(img is None or img.size == 0 for img in images):
        raise ConversionError(f"{fmt} decoding error")
    if frame != "all":
        if frame >= len(images):
            raise ConversionError(f"frame {frame} not found: the image has {len(images)}")
        images = images[frame : frame + 1] if frame else images
    orientation = exif_orientation(data, fmt)
    frames = [_pixels(img, data, fmt, orientation) for img in images]
    width, height = size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    elif fmt == "jpg" and turned_by_decoder(width, height, frames[0].data.shape, factor):
        width, height = height, width
    return [dataclasses.replace(f, original=(width, height)) for f in frames]


def _pixels(img: np.ndarray, data: bytes, fmt: str, orientation: int) -> Pixels:
    if img.dtype == np.uint8:
        depth = 8
    elif img.dtype == np.uint16:
        depth = 16
    else:
        raise UnsupportedFormatError(f"{img.dtype} pixels are not supported")
    if orientation in _ORIENT:
        img = np.ascontiguousarray(_ORIENT[orientation](img))
    if img.ndim == 2:
        return Pixels(img, "L", depth, fmt)
    channels = img.shape[2]
    if channels == 1:
        return Pixels(img[:, :, 0], "L", depth, fmt)
    if channels == 2:
        return Pixels(img, "LA", depth, fmt)
    if channels == 4 and fmt == "png" and png_color_type(data) == 4:  # grey+alpha, expanded by OpenCV
        return Pixels(np.dstack([img[:, :, 0], img[:, :, 3]]), "LA", depth, fmt)
    if channels == 4:
        return Pixels(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA), "RGBA", depth, fmt)
    return Pixels(cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB), "RGB", depth, fmt)


def _float(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64)


def _composite(colour: np.ndarray, alpha: np.ndarray, maximum: int) -> np.ndarray:
    """Colour over white, by alpha (all at the same depth)."""
    a = _float(alpha) / maximum
    if colour.ndim == 3:
        a = a[:, :, None]
    return _float(colour) * a + maximum * (1.0 - a)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return _float(rgb) @ _LUMA


def to_channels(pixels: Pixels, mode: str) -> tuple[np.ndarray, str]:
    """The pixels in channel mode (auto: the source's), as float64 values at the source depth."""
    src, m = pixels.data, pixels.maximum
    target = pixels.mode if mode == "auto" else mode
    if target == pixels.mode:
        return _float(src), target
    if pixels.mode == "L":
        grey = _float(src)
        colour = np.dstack([grey] * 3) if target in ("RGB", "RGBA") else grey
        return (colour if target == "RGB" else np.dstack([colour, np.full(grey.shape, float(m))])), target
    if pixels.mode == "LA":
        grey, alpha = src[:, :, 0], src[:, :, 1]
        if target == "RGBA":
            return np.dstack([_float(grey)] * 3 + [_float(alpha)]), target
        flat = _composite(grey, alpha, m)
        return (flat if target == "L" else np.dstack([flat] * 3)), target
    if pixels.mode == "RGB":
        if target == "L":
            return _luma(src), target
        extra = np.full(src.shape[:2], float(m))
        return np.dstack([_luma(src) if target == "LA" else _float(src), extra]), target
    rgb, alpha = src[:, :, :3], src[:, :, 3]
    if target == "LA":
        return np.dstack([_luma(rgb), _float(alpha)]), target
    flat = _composite(rgb, alpha, m)
    return (_luma(flat) if target == "L" else flat), target


def _resize(pixels: Pixels, options: ConversionOptions) -> Pixels:
    """Resize as the job does (area down, lanczos up, white padding at the source depth)."""
    if options.resize_mode == "no" or options.image_size is None:
        return pixels
    h, w = pixels.data.shape[:2]
    plan = plan_resize(w, h, options.image_size, options.resize_mode, False)
    channels = 1 if pixels.data.ndim == 2 else pixels.data.shape[2]
    data = apply_plan(pixels.data, plan, "lanczos", "area", True, pad_value=(pixels.maximum,) * channels)
    return dataclasses.replace(pixels, data=data)


def to_array(pixels: Pixels, options: ConversionOptions) -> np.ndarray:
    """The array that options ask for from one decoded frame."""
    pixels = _resize(pixels, options)
    target = pixels.mode if options.channel_mode == "auto" else options.channel_mode
    dtype = np.dtype(options.dtype)
    if target == pixels.mode and options.normalize_mode == "none" and dtype == pixels.data.dtype:
        return pixels.data.ravel() if options.flatten else pixels.data  # nothing to compute
    values, _ = to_channels(pixels, options.channel_mode)
    if options.normalize_mode == "0..1":
        values = values / pixels.maximum
    elif options.normalize_mode == "-1..1":
        values = values / pixels.maximum * 2.0 - 1.0
    if dtype.kind == "u":
        values = np.clip(np.rint(values), 0, np.iinfo(dtype).max)
    elif dtype == np.float16:  # 16-bit values unnormalised go past float16's 65504: clip, never inf
        values = np.clip(values, -65504.0, 65504.0)
    array = values.astype(dtype)
    return array.ravel() if options.flatten else array


def convert_bytes(
    data: bytes, options: ConversionOptions, max_pixels: int = MAX_IMAGE_PIXELS, boxes: list | None = None
) -> tuple:
    """(array, the first frame's Pixels) for image bytes; frame "all" stacks the frames (NxHxWxC).

    boxes (relative [x0, y0, x1, y1], bbox_col's) are blurred before the resize, as the image path does.
    """
    resize = (options.image_size, options.resize_mode) if options.image_size and options.resize_mode != "no" else None
    frames = decode_frames(data, options.frame, max_pixels, resize)
    if boxes:
        frames = [dataclasses.replace(f, data=blur_boxes(f.data, boxes)) for f in frames]
    arrays = [to_array(p, options) for p in frames]
    if options.frame != "all":
        return arrays[0], frames[0]
    if len({a.shape for a in arrays}) != 1:
        raise ConversionError("frames differ in size: frame='all' needs frames of one size")
    return np.stack(arrays), frames[0]
