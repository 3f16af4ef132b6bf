"""webdataset: {shard}.tar with {key}.{jpg,json,txt} per successful sample."""

from __future__ import annotations

from typing import Any

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

    def finish(self) -> None:
        self.tar.close()
