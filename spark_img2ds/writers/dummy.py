"""dummy: no samples and no metadata, only the stats (for measuring download speed)."""

from __future__ import annotations

from spark_img2ds.writers.base import ShardWriter


class DummyWriter(ShardWriter):
    """Writes no samples and no metadata: for measuring download speed."""

    writes_metadata = False
