"""webdataset: {shard}.tar with {key}.{jpg,json,txt} per successful sample."""

from __future__ import annotations

import itertools
import tarfile
from collections.abc import Iterator
from typing import Any

import fsspec

from spark_img2ds.dataset.columns import SUCCESS
from spark_img2ds.dataset.storage import join
from spark_img2ds.writers.base import ShardWriter, sample_json
from spark_img2ds.writers.tar import TarStream


class WebDatasetWriter(ShardWriter):
    """{shard}.tar with {key}.{jpg,json,txt} per successful sample."""

    def open_outputs(self) -> None:
        self.tar = TarStream(self.open(f"{self.shard}.tar"))

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        self.tar.add(f"{key}.{self.image_ext}", image)
        self.tar.add(f"{key}.json", sample_json(meta))
        if self.cfg.caption_col:
            self.tar.add(f"{key}.txt", (caption or "").encode())

    @classmethod
    def stored_samples(cls, fs: fsspec.AbstractFileSystem, root: str, shard: str) -> Iterator[tuple[str, Any]]:
        """(key, [(member name, bytes), ...]) per sample of the committed tar, streamed."""
        with fs.open(join(root, f"{shard}.tar"), "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
            members = ((m.name, tar.extractfile(m).read()) for m in tar if m.isfile())
            for key, group in itertools.groupby(members, key=lambda item: item[0].split(".", 1)[0]):
                yield key, list(group)

    @classmethod
    def stored_rows(cls, status: str) -> bool:
        return status == SUCCESS

    def keep_sample(self, key: str, stored: Any) -> None:
        for name, data in stored:
            self.tar.add(name, data)

    def finish(self) -> None:
        self.tar.close()
