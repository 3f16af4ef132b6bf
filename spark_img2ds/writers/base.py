"""What every output format shares: one shard, samples in key order, committed at close.

A format is a ShardWriter subclass that opens its files in ``open_outputs`` and
stores a successful sample in ``write_sample``. The per-shard metadata parquet
(one row per input row, success or not) is handled here for all formats.
"""

from __future__ import annotations

import contextlib
import json
from typing import IO, Any, ClassVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from spark_img2ds.config import Config
from spark_img2ds.dataset.layout import metadata_name
from spark_img2ds.dataset.storage import committed_open, join

ROW_GROUP_ROWS = 1024


class MetadataWriter:
    """Streams metadata rows into a parquet file, a row group at a time."""

    def __init__(self, f: IO[bytes], schema: pa.Schema) -> None:
        self.schema = schema
        self._writer = pq.ParquetWriter(f, schema, compression="snappy")
        self._rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


class ShardWriter:
    """Writes one shard; nothing is visible under a final name until close() succeeds."""

    writes_metadata: ClassVar[bool] = True

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        root: str,
        shard: str,
        cfg: Config,
        schema: pa.Schema,
        run: dict[str, Any] | None = None,
    ) -> None:
        self.fs, self.root, self.shard, self.cfg = fs, root, shard, cfg
        self.run = run or {}  # job_id and started (the driver's), the same for every attempt of the run
        self.image_ext = cfg.encode_format
        self._stack = contextlib.ExitStack()
        self.metadata: MetadataWriter | None = None
        try:
            self.open_outputs()
            if self.writes_metadata:
                self.metadata = MetadataWriter(self.open(metadata_name(shard)), self.metadata_schema(schema))
        except BaseException as err:
            self.abort(err)
            raise

    # -- for subclasses ------------------------------------------------
    def open(self, relative: str) -> IO[bytes]:
        """A committed output file under the dataset root."""
        return self._stack.enter_context(committed_open(self.fs, join(self.root, relative)))

    def open_outputs(self) -> None:
        """Open the format's own files."""

    def metadata_schema(self, schema: pa.Schema) -> pa.Schema:
        return schema

    def metadata_row(self, meta: dict[str, Any], image: bytes | None) -> dict[str, Any]:
        return meta

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        """Store one successful sample."""

    # -- used by the shard worker ---------------------------------------
    def write(
        self, key: str, image: bytes | None, caption: str | None, meta: dict[str, Any], sample: Any = None
    ) -> None:
        """Store one input row's outcome (sample: the worker's Sample, for formats that need more than bytes)."""
        if image is not None:
            self.write_sample(key, image, caption, meta)
        if self.metadata is not None:
            self.metadata.add(self.metadata_row(meta, image))

    def finish(self) -> None:
        """Flush the format's buffers before the files are committed."""

    def close(self) -> None:
        """Finish every file and publish them."""
        try:
            self.finish()
            if self.metadata is not None:
                self.metadata.close()
        except BaseException as err:
            self.abort(err)
            raise
        self._stack.close()

    def abort(self, err: BaseException) -> None:
        """Discard every file of this attempt."""
        if self.metadata is not None:
            # Finished now, into the file being discarded: left open, the parquet writer
            # would write its footer to a closed file when it is collected.
            with contextlib.suppress(Exception):
                self.metadata.close()
        self._stack.__exit__(type(err), err, err.__traceback__)


def sample_json(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, indent=4, default=str).encode()
