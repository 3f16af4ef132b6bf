"""Rewriting a committed shard with its failed rows downloaded again (retry_failed_from).

The shard's rows are written again in key order: a row that failed before and is in
the task's input is downloaded; every other row is copied as it was, its metadata row
from the old parquet and its sample from the format's own file (read as a stream, in
key order, alongside). The new files replace the old ones through the commit protocol,
the format's files before the metadata parquet and the stats marker last, and only if
the shard gained a sample; otherwise nothing is written. A row counts as failed only
if the old parquet says so, so a task retried after the shard was rewritten keeps the
samples it recovered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.columns import ERROR_MESSAGE, KEY, STATUS, SUCCESS
from spark_img2ds.dataset.stats import ShardStats
from spark_img2ds.worker.sample import Sample
from spark_img2ds.worker.shards import OpenShard, committed_stats
from spark_img2ds.writers import writer_class

READ_BATCH = 1024


class Unchanged(Exception):
    """The rewrite gained no sample: its files are discarded and the shard stays as it was."""


class _Stored:
    """A format's stored samples, taken by key in key order; keys not asked for are skipped."""

    def __init__(self, entries: Iterator[tuple[str, Any]]) -> None:
        self.entries = entries
        self.head = next(entries, None)

    def take(self, key: str) -> Any | None:
        while self.head is not None and self.head[0] < key:
            self.head = next(self.entries, None)
        if self.head is None or self.head[0] != key:
            return None
        found = self.head[1]
        self.head = next(self.entries, None)
        return found


def old_schema(schema: pa.Schema, image_column: str) -> pa.Schema:
    """The metadata columns of an old shard parquet (the parquet format adds the image bytes as a column)."""
    return pa.schema([f for f in schema if f.name != image_column])


class RewrittenShard(OpenShard):
    """A committed shard written again; its table holds the rows to download again."""

    def __init__(self, cfg, fs, root: str, shard_id: int, table: pa.Table, *args: Any) -> None:
        super().__init__(cfg, fs, root, shard_id, table, *args)
        base = committed_stats(fs, root, self.name, shard_id)
        if base is None:
            raise ValueError(f"shard {self.name} has no stats file: never committed, nothing to rewrite")
        self.parquet = pq.ParquetFile(fs.open(storage.join(root, layout.metadata_name(self.name)), "rb"))
        old = self.parquet.read(columns=[KEY, STATUS])
        statuses = old.column(STATUS).to_pylist()
        self.keys = old.column(KEY).to_pylist()
        self.rows = len(self.keys)
        # Row positions are indices: a shard's rows are numbered 0..n-1 in key order.
        self.retry_at = {
            index: pos for pos, index in enumerate(self.indices) if index < self.rows and statuses[index] != SUCCESS
        }
        self.schema = old_schema(self.parquet.schema_arrow, cfg.encode_format)
        self.base = base
        self.stats = ShardStats.from_json(shard_id, base.to_json())
        self.stats.start_time = time.time()
        self.gained = 0
        self.old_rows: Iterator[dict[str, Any]] | None = None
        self.samples: _Stored | None = None
        self.kind = writer_class(cfg.output_format)

    def committed(self) -> ShardStats | None:
        return None  # committed is the starting point here, not a reason to skip

    def open(self) -> None:
        self.old_rows = (row for batch in self.parquet.iter_batches(READ_BATCH) for row in batch.to_pylist())
        self.samples = _Stored(self.kind.stored_samples(self.fs, self.root, self.name))
        super().open()

    def download_args(self, i: int) -> tuple | None:
        at = self.retry_at.get(i)
        return None if at is None else super().download_args(at)

    def write(self, i: int, sample: Sample | None) -> bool:
        row = next(self.old_rows)
        key = row[KEY]
        if key != self.keys[i]:
            raise ValueError(f"shard {self.name}: its parquet changed while it was rewritten")
        stored = self.samples.take(key)
        if sample is None:
            if stored is None and self.kind.stored_rows(row[STATUS]):
                raise ValueError(f"shard {self.name}: sample {key} is in its parquet, not in its files; left as it was")
            self.writer.keep(key, row, stored)
        else:
            self.stats.forget(row[STATUS], row[ERROR_MESSAGE])
            self.store(self.retry_at[i], key, sample)
            if sample.status == SUCCESS:
                self.gained += 1
            else:
                self.writer.forget(key)
        return self.advance()

    def commit(self) -> ShardStats:
        if not self.gained:
            self.abort(Unchanged())
            return self.base
        return super().commit()
