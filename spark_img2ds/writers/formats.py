"""The output formats: webdataset tar, files, parquet and dummy."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spark_img2ds.storage import join, write_committed
from spark_img2ds.writers.base import ShardWriter, sample_json
from spark_img2ds.writers.tar import TarStream


class WebDatasetWriter(ShardWriter):
    """{shard}.tar with {key}.{jpg,json,txt} per successful sample."""

    name = "webdataset"

    def open_outputs(self) -> None:
        self.tar = TarStream(self.open(f"{self.shard}.tar"))

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        self.tar.add(f"{key}.{self.image_ext}", image)
        self.tar.add(f"{key}.json", sample_json(meta))
        if self.cfg.caption_col:
            self.tar.add(f"{key}.txt", (caption or "").encode())

    def finish(self) -> None:
        self.tar.close()


class FilesWriter(ShardWriter):
    """A folder per shard holding {key}.{jpg,json,txt}."""

    name = "files"

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        folder = join(self.root, self.shard)
        write_committed(self.fs, join(folder, f"{key}.{self.image_ext}"), image)
        write_committed(self.fs, join(folder, f"{key}.json"), sample_json(meta))
        if self.cfg.caption_col:
            write_committed(self.fs, join(folder, f"{key}.txt"), (caption or "").encode())


class ParquetFormatWriter(ShardWriter):
    """{shard}.parquet holding the metadata and the image bytes in one more column."""

    name = "parquet"

    def metadata_schema(self, schema: pa.Schema) -> pa.Schema:
        return schema.append(pa.field(self.image_ext, pa.binary()))

    def metadata_row(self, meta: dict[str, Any], image: bytes | None) -> dict[str, Any]:
        return {**meta, self.image_ext: image}


class DummyWriter(ShardWriter):
    """Writes no samples and no metadata: for measuring download speed."""

    name = "dummy"
    writes_metadata = False


WRITERS: dict[str, type[ShardWriter]] = {
    w.name: w for w in (WebDatasetWriter, FilesWriter, ParquetFormatWriter, DummyWriter)
}
