"""Output formats, one module each; FORMATS is the one list of them (Config, the CLI and the docs read it).

A format is a ShardWriter subclass (base.py). The registry names its class without
importing it, so that reading the list costs nothing (the CLI's --help, Config).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple


class Format(NamedTuple):
    target: str  # "module:Class" of its ShardWriter
    description: str


FORMATS = {
    "webdataset": Format("spark_img2ds.writers.webdataset:WebDatasetWriter", "{shard}.tar of {key}.jpg/.json/.txt"),
    "files": Format("spark_img2ds.writers.files:FilesWriter", "a folder per shard of {key}.jpg/.json/.txt"),
    "parquet": Format("spark_img2ds.writers.parquet:ParquetFormatWriter", "the image bytes in the metadata parquet"),
    "tfrecord": Format("spark_img2ds.writers.tfrecord:TFRecordWriter", "{shard}.tfrecord of tf.train.Example"),
    "npz": Format("spark_img2ds.writers.npz:NpzWriter", "{shard}.npz of arrays and a JSON manifest"),
    "dummy": Format("spark_img2ds.writers.dummy:DummyWriter", "writes nothing but the stats (measures downloads)"),
}
OUTPUT_FORMATS = tuple(FORMATS)


def writer_class(name: str) -> type:
    """The ShardWriter subclass of an output format."""
    module, cls = FORMATS[name].target.split(":")
    return getattr(importlib.import_module(module), cls)
