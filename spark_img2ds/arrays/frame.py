"""An npz dataset as a Spark DataFrame, for notebook users who train from Spark."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ARRAY_COLUMNS = "key string, array binary, shape array<int>, dtype string"


def _shard_rows(paths: Iterator[str], storage_options: dict) -> Iterator[tuple]:
    """(key, .npy bytes, shape, dtype) of each array in the given shards (runs on the executors)."""
    import numpy as np

    from spark_img2ds.arrays.npz import iter_npz_dataset

    for path in paths:
        for key, array, _ in iter_npz_dataset(path, storage_options, single_file=True):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            yield key, buffer.getvalue(), [int(n) for n in array.shape], str(array.dtype)


def arrays_dataframe(spark: SparkSession, path: str, storage_options: dict | None = None) -> DataFrame:
    """key, array (.npy bytes: numpy.load(io.BytesIO(b))), shape, dtype and every metadata column.

    Successful samples only; the shard parquets give the metadata, the shards are read on the executors.
    """
    import fsspec

    options = storage_options or {}
    fs, root = fsspec.core.url_to_fs(path, **options)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    shards = [prefix + p for p in sorted(fs.glob(root.rstrip("/") + "/*.npz"))]
    rows = spark.sparkContext.parallelize(shards, max(1, len(shards))).mapPartitions(
        lambda part: _shard_rows(part, options)
    )
    arrays = spark.createDataFrame(rows, ARRAY_COLUMNS)
    metadata = spark.read.parquet(*[p[: -len(".npz")] + ".parquet" for p in shards]).where("status = 'success'")
    return arrays.join(metadata, "key")
