"""parquet: the metadata parquet with the image bytes in one more column."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spark_img2ds.writers.base import ShardWriter


class ParquetFormatWriter(ShardWriter):
    """{shard}.parquet holding the metadata and the image bytes in one more column."""

    def metadata_schema(self, schema: pa.Schema) -> pa.Schema:
        return schema.append(pa.field(self.image_ext, pa.binary()))

    def metadata_row(self, meta: dict[str, Any], image: bytes | None) -> dict[str, Any]:
        return {**meta, self.image_ext: image}
