"""What the image path does, as a small validated object (no OpenCV import: the CLI and Config read it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from spark_img2ds.errors import is_int, is_number, require

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
# Interpolation names (img2dataset's) and the OpenCV constant each stands for.
INTERPOLATIONS = {
    "nearest": "INTER_NEAREST",
    "linear": "INTER_LINEAR",
    "bilinear": "INTER_LINEAR",
    "cubic": "INTER_CUBIC",
    "bicubic": "INTER_CUBIC",
    "area": "INTER_AREA",
    "lanczos": "INTER_LANCZOS4",
    "lanczos4": "INTER_LANCZOS4",
}
ENCODE_FORMATS = ("jpg", "png", "webp")
MAX_IMAGE_SIZE = 65500  # OpenCV refuses larger images
# Pillow's decompression-bomb threshold (a quarter GiB of 24-bit pixels): refused from the header.
MAX_IMAGE_PIXELS = 89_478_485


@dataclass(frozen=True)
class ImageOptions:
    """Resize, encode and reject rules for one image; the defaults are img2dataset's."""

    image_size: int = 256
    resize_mode: str = "border"
    resize_only_if_bigger: bool = False
    upscale_interpolation: str = "lanczos"
    downscale_interpolation: str = "area"
    fast_downscale: bool = True
    fast_decode: bool = False  # decode JPEGs reduced down to the target itself (faster, softer), not to twice it
    encode_format: str = "jpg"
    encode_quality: int = 95
    skip_reencode: bool = False
    disable_all_reencoding: bool = False
    min_image_size: int = 0
    max_image_area: float = math.inf
    max_aspect_ratio: float = math.inf
    max_image_pixels: int = MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        require(
            is_int(self.image_size) and self.image_size >= 1,
            f"image_size must be a positive integer, got {self.image_size!r}",
        )
        require(
            self.image_size <= MAX_IMAGE_SIZE,
            f"image_size must be at most {MAX_IMAGE_SIZE} (an OpenCV limit), got {self.image_size}",
        )
        require(
            is_int(self.min_image_size) and self.min_image_size >= 0,
            f"min_image_size must be an integer >= 0, got {self.min_image_size!r}",
        )
        require(
            is_int(self.max_image_pixels) and self.max_image_pixels >= 1,
            f"max_image_pixels must be a positive integer, got {self.max_image_pixels!r}",
        )
        for name in ("max_image_area", "max_aspect_ratio"):
            v = getattr(self, name)
            require(is_number(v) and v > 0, f"{name} must be a positive number, got {v!r}")
        choices = {
            "resize_mode": RESIZE_MODES,
            "upscale_interpolation": tuple(INTERPOLATIONS),
            "downscale_interpolation": tuple(INTERPOLATIONS),
            "encode_format": ENCODE_FORMATS,
        }
        for name, allowed in choices.items():
            v = getattr(self, name)
            require(v in allowed, f"{name} must be one of {', '.join(allowed)}; got {v!r}")
        for f in fields(self):
            if f.type == "bool":
                v = getattr(self, f.name)
                require(isinstance(v, bool), f"{f.name} must be true or false, got {v!r}")
        q = self.encode_quality
        if self.encode_format == "png":
            require(is_int(q) and 0 <= q <= 9, f"encode_quality for png is a compression level 0-9, got {q!r}")
        else:
            require(is_int(q) and 0 <= q <= 100, f"encode_quality for {self.encode_format} must be 0-100, got {q!r}")


IMAGE_OPTION_NAMES = tuple(f.name for f in fields(ImageOptions))
DEFAULT_IMAGE_OPTIONS = ImageOptions()
