"""Output formats; add one by subclassing ShardWriter and listing it in WRITERS."""

from spark_img2ds.writers.base import MetadataWriter, ShardWriter, metadata_schema
from spark_img2ds.writers.formats import WRITERS

__all__ = ["WRITERS", "MetadataWriter", "ShardWriter", "metadata_schema"]
