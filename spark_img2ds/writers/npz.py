"""npz: {shard}.npz holding one array per successful sample under its key, and a JSON manifest.

The manifest (``__manifest_json__``) lists every input row in key order, as the shard
parquet does: key, status, shape, dtype, error, provenance (url, sha256 of the source
bytes, the run's start as ingest time, job id) and the passed-through metadata. Arrays
stream into the zip one at a time through the commit protocol, so memory holds one
array and the manifest rows, and a killed task leaves nothing under the final name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fsspec
import numpy as np

from spark_img2ds.arrays.npz import MANIFEST_KEY, SCHEMA_VERSION, NpzStream, read_manifest
from spark_img2ds.arrays.options import CONVERTER_VERSION
from spark_img2ds.dataset.columns import OUTCOME_COLUMNS, SUCCESS, URL
from spark_img2ds.dataset.storage import join
from spark_img2ds.writers.base import ShardWriter

# Columns that describe the outcome, not the input: kept out of a row's passed-through metadata.
_NOT_METADATA = {URL, "key", "exif", *(name for name, _ in OUTCOME_COLUMNS)}


class NpzWriter(ShardWriter):
    def open_outputs(self) -> None:
        self.stream = NpzStream(self.open(f"{self.shard}.npz"), self.cfg.npz_compressed)
        self.rows: list[dict[str, Any]] = []
        self.hash_names = {self.cfg.compute_hash} if self.cfg.compute_hash else set()

    def write(
        self, key: str, image: bytes | None, caption: str | None, meta: dict[str, Any], sample: Any = None
    ) -> None:
        array = getattr(sample, "array", None)
        ok = meta["status"] == SUCCESS and array is not None
        if ok:
            self.stream.add(key, array)
        self.rows.append(
            {
                "key": key,
                "status": meta["status"],
                "shape": list(array.shape) if ok else None,
                "dtype": str(array.dtype) if ok else None,
                "error": meta["error_message"],
                "provenance": {
                    "url": meta[URL],
                    "sha256": getattr(sample, "source_sha256", None),
                    "ingested_at": self.run.get("started"),
                    "job_id": self.run.get("job_id"),
                },
                "metadata": {k: v for k, v in meta.items() if k not in _NOT_METADATA and k not in self.hash_names},
            }
        )
        super().write(key, None, caption, meta, sample)  # the metadata parquet row; no image bytes

    @classmethod
    def stored_samples(cls, fs: fsspec.AbstractFileSystem, root: str, shard: str) -> Iterator[tuple[str, Any]]:
        """(key, (manifest row, array or None)) for every row of the committed shard's manifest, failures too."""
        with fs.open(join(root, f"{shard}.npz"), "rb") as f, np.load(f, allow_pickle=False) as data:
            for row in read_manifest(data[MANIFEST_KEY])["rows"]:
                array = data[row["key"]] if row.get("status") == SUCCESS else None
                yield row["key"], (row, array)

    @classmethod
    def stored_rows(cls, status: str) -> bool:
        return True

    def keep(self, key: str, row: dict[str, Any], stored: Any) -> None:
        manifest_row, array = stored
        if array is not None:
            self.stream.add(key, array)
        self.rows.append(manifest_row)
        super().keep(key, row, None)

    def finish(self) -> None:
        ok = sum(r["status"] == SUCCESS for r in self.rows)
        self.stream.close(
            {
                "schema_version": SCHEMA_VERSION,
                "converter_version": CONVERTER_VERSION,
                "job_id": self.run.get("job_id"),
                "shard": self.shard,
                "options": self.cfg.conversion_options().to_json(),
                "ok_count": ok,
                "error_count": len(self.rows) - ok,
                "rows": self.rows,
            }
        )

    def abort(self, err: BaseException) -> None:
        stream = getattr(self, "stream", None)
        if stream is not None:
            stream.discard()
        super().abort(err)
