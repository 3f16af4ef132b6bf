"""What every output format shares: one shard, samples in key order, committed at close.

A format is a ShardWriter subclass that opens its files in ``open_outputs`` and
stores a successful sample in ``write_sample``. The per-shard metadata parquet
(one row per input row, success or not) is handled here for all formats.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
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
            # Opened first, so committed last: a rewritten shard (retry_failed_from) never has a metadata
            # row calling a sample a success before the file that holds the sample is in place.
            if self.writes_metadata:
                self.metadata = MetadataWriter(self.open(metadata_name(shard)), self.metadata_schema(schema))
            self.open_outputs()
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

    @classmethod
    def stored_samples(cls, fs: fsspec.AbstractFileSystem, root: str, shard: str) -> Iterator[tuple[str, Any]]:
        """(key, what keep_sample takes) for every sample a committed shard's own files hold, in key order.

        Read when a shard is rewritten (retry_failed_from); formats whose samples live in the
        metadata parquet (parquet) or in files of their own (files) have none to carry over.
        """
        return iter(())

    @classmethod
    def stored_rows(cls, status: str) -> bool:
        """Whether stored_samples holds an entry for a row of this status (its absence means a damaged shard)."""
        return False

    def keep_sample(self, key: str, stored: Any) -> None:
        """Store again, unchanged, a sample read by stored_samples."""

    def forget(self, key: str) -> None:
        """Remove what an interrupted rewrite may have left of a row that failed again (files keeps no index)."""

    # -- used by the shard worker ---------------------------------------
    def keep(self, key: str, row: dict[str, Any], stored: Any) -> None:
        """Write again, as read, a row of a shard being rewritten: its stored sample (if any), its metadata row."""
        if stored is not None:
            self.keep_sample(key, stored)
        if self.metadata is not None:
            self.metadata.add(row)

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
