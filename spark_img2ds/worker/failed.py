"""Reading the rows to download again out of committed shard parquets (retry_failed_from), in Spark tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.columns import ERROR_MESSAGE, INDEX_COL, SHARD_COL, STATUS
from spark_img2ds.dataset.stats import wants_retry

POSITION = "id"  # the one column of the task input (spark.range's): positions in the list of shards


def failed_rows(
    shard_ids: list[int],
    output_folder: str,
    storage_options: dict[str, Any],
    oom_shard_count: int,
    columns: list[str],
    patterns: list[str] | None,
    schema: pa.Schema,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function given to mapInArrow: positions in shard_ids in; the rows to retry (columns, shard, index) out.

    The input is spark.range, not a DataFrame made from a Python list: that one's rows pass through
    a Python worker of their own in the same task, and each task would hold two workers.
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs, root = storage.filesystem(output_folder, storage_options)
        for batch in batches:
            for position in batch.column(POSITION).to_pylist():
                shard_id = shard_ids[position]
                path = storage.join(root, layout.metadata_name(layout.shard_name(shard_id, oom_shard_count)))
                with fs.open(path, "rb") as f:
                    table = pq.read_table(f, columns=[*columns, STATUS, ERROR_MESSAGE])
                keep = [
                    wants_retry(s, e, patterns)
                    for s, e in zip(
                        table.column(STATUS).to_pylist(), table.column(ERROR_MESSAGE).to_pylist(), strict=True
                    )
                ]
                if not any(keep):
                    continue
                mask = pa.array(keep)
                picked = table.select(columns).filter(mask)
                picked = picked.append_column(SHARD_COL, pa.array([shard_id] * picked.num_rows, pa.int64()))
                index = pc.filter(pa.array(range(table.num_rows), pa.int64()), mask)
                picked = picked.append_column(INDEX_COL, index)
                yield from picked.cast(schema).to_batches()

    return run
