"""files: a folder per shard holding {key}.{jpg,json,txt}."""

from __future__ import annotations

from typing import Any

from spark_img2ds.dataset.storage import join, write_committed
from spark_img2ds.writers.base import ShardWriter, sample_json


class FilesWriter(ShardWriter):
    """A folder per shard holding {key}.{jpg,json,txt}."""

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        folder = join(self.root, self.shard)
        write_committed(self.fs, join(folder, f"{key}.{self.image_ext}"), image)
        write_committed(self.fs, join(folder, f"{key}.json"), sample_json(meta))
        if self.cfg.caption_col:
            write_committed(self.fs, join(folder, f"{key}.txt"), (caption or "").encode())

    def forget(self, key: str) -> None:
        folder = join(self.root, self.shard)
        for ext in (self.image_ext, "json", "txt"):
            path = join(folder, f"{key}.{ext}")
            if self.fs.exists(path):
                self.fs.rm(path)
