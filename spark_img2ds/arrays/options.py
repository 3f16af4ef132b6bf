"""How an image becomes an array: channels, normalisation, dtype, frame, shape, size (pure, validated)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spark_img2ds.errors import ConfigError, is_int, require
from spark_img2ds.imaging.options import RESIZE_MODES

CHANNEL_MODES = ("RGB", "RGBA", "L", "LA", "auto")
NORMALIZE_MODES = ("none", "0..1", "-1..1")
DTYPES = ("uint8", "uint16", "float16", "float32", "float64")
CONVERTER_VERSION = "1"


@dataclass(frozen=True)
class ConversionOptions:
    """Arrays are in RGB order (never OpenCV's BGR), HxWxC, or HxW for L; the defaults keep 8-bit RGB."""

    channel_mode: str = "RGB"
    normalize_mode: str = "none"
    dtype: str = "uint8"
    flatten: bool = False
    frame: int | str = 0  # which frame of a multi-frame image, or "all" (stacked: NxHxWxC)
    image_size: int | None = None  # with resize_mode, resize before conversion, as the job does
    resize_mode: str = "no"

    def __post_init__(self) -> None:
        require(self.channel_mode in CHANNEL_MODES, f"channel_mode must be one of {', '.join(CHANNEL_MODES)}")
        require(self.normalize_mode in NORMALIZE_MODES, f"normalize_mode must be one of {', '.join(NORMALIZE_MODES)}")
        require(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}")
        require(isinstance(self.flatten, bool), "flatten must be true or false")
        require(
            self.frame == "all" or (is_int(self.frame) and self.frame >= 0),
            f"frame must be a frame index >= 0 or 'all', got {self.frame!r}",
        )
        require(self.resize_mode in RESIZE_MODES, f"resize_mode must be one of {', '.join(RESIZE_MODES)}")
        require(
            self.image_size is None or (is_int(self.image_size) and self.image_size >= 1),
            "image_size must be a positive integer or none",
        )
        require(self.resize_mode == "no" or self.image_size is not None, "resize_mode needs an image_size")

    @classmethod
    def of(cls, options: ConversionOptions | dict[str, Any] | None) -> ConversionOptions:
        """Options as given: an instance, a dict of field values, or None for the defaults."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, dict):
            unknown = sorted(set(options) - set(cls.__dataclass_fields__))
            if unknown:
                raise ConfigError(f"unknown conversion option(s): {', '.join(unknown)}")
            return cls(**options)
        raise ConfigError("options must be a ConversionOptions, a dict or None")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
