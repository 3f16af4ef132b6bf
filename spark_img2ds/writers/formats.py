"""The output formats: webdataset tar, files, parquet and dummy."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pyarrow as pa

from spark_img2ds.storage import join, write_committed
from spark_img2ds.writers.base import ShardWriter, sample_json

# Fixed member metadata so that the same shard always gives the same bytes.
TAR_MTIME = 0
TAR_MODE = 0o644


def tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = TAR_MTIME
    info.mode = TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


class WebDatasetWriter(ShardWriter):
    """{shard}.tar with {key}.{jpg,json,txt} per successful sample."""

    name = "webdataset"

    def open_outputs(self) -> None:
        self.tar = tarfile.open(fileobj=self.open(f"{self.shard}.tar"), mode="w|", format=tarfile.USTAR_FORMAT)

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        tar_member(self.tar, f"{key}.{self.image_ext}", image)
        tar_member(self.tar, f"{key}.json", sample_json(meta))
        if self.cfg.caption_col:
            tar_member(self.tar, f"{key}.txt", (caption or "").encode())

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
