"""ML-ready arrays: the image-to-array SDK, NPZ files with manifests, and npz datasets for training.

    from spark_img2ds import convert
    array = convert("photo.png", {"normalize_mode": "0..1", "dtype": "float32"})

Nothing here starts Spark; arrays_dataframe takes a session the caller already has.
Names load on first use, so that Config can read the options without OpenCV.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConversionOptions": "spark_img2ds.arrays.options",
    "BatchResult": "spark_img2ds.arrays.sdk",
    "ConversionResult": "spark_img2ds.arrays.sdk",
    "convert": "spark_img2ds.arrays.sdk",
    "convert_many": "spark_img2ds.arrays.sdk",
    "convert_result": "spark_img2ds.arrays.sdk",
    "decoder_capabilities": "spark_img2ds.arrays.sdk",
    "supported_formats": "spark_img2ds.arrays.sdk",
    "iter_npz_dataset": "spark_img2ds.arrays.npz",
    "load_npz": "spark_img2ds.arrays.npz",
    "save_npz": "spark_img2ds.arrays.npz",
    "arrays_dataframe": "spark_img2ds.arrays.frame",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spark_img2ds.arrays' has no attribute {name!r}")
