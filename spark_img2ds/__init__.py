"""spark_img2ds: turn image URL lists into training datasets with Spark.

from spark_img2ds import download
download(url_list="urls.txt", output_folder="s3://bucket/ds", output_format="webdataset")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Loaded on first use: importing the package stays cheap for the processes that need
# none of this (the worker daemon, which forks every Python worker, and --help).
_EXPORTS = {
    "Config": "spark_img2ds.config",
    "ConfigError": "spark_img2ds.errors",
    "Img2dsError": "spark_img2ds.errors",
    "InputError": "spark_img2ds.errors",
    "Summary": "spark_img2ds.api",
    "download": "spark_img2ds.api",
    "run": "spark_img2ds.api",
    "ConversionOptions": "spark_img2ds.arrays.options",
    "ConversionResult": "spark_img2ds.arrays.sdk",
    "BatchResult": "spark_img2ds.arrays.sdk",
    "convert": "spark_img2ds.arrays.sdk",
    "convert_result": "spark_img2ds.arrays.sdk",
    "convert_many": "spark_img2ds.arrays.sdk",
    "save_npz": "spark_img2ds.arrays.npz",
    "load_npz": "spark_img2ds.arrays.npz",
    "supported_formats": "spark_img2ds.arrays.sdk",
    "decoder_capabilities": "spark_img2ds.arrays.sdk",
    "ConversionError": "spark_img2ds.errors",
    "UnsupportedFormatError": "spark_img2ds.errors",
    "NPZError": "spark_img2ds.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spark_img2ds' has no attribute {name!r}")
