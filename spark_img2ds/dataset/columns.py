"""The one list of metadata columns, their types and the status values (img2dataset's).

A shard's metadata parquet holds, in this order: the input's additional columns,
caption (with caption_col), url, key, status, error_message, width, height,
original_width, original_height, exif (with extract_exif) and the hash column named
after compute_hash. The same names are the columns the driver hands to the workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

SUCCESS = "success"
FAILED_TO_DOWNLOAD = "failed_to_download"
FAILED_TO_RESIZE = "failed_to_resize"
STATUSES = (SUCCESS, FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE)

HASHES = ("md5", "sha256", "sha512")

URL = "url"
CAPTION = "caption"
KEY = "key"
EXIF = "exif"
STATUS = "status"
ERROR_MESSAGE = "error_message"
# Filled from a sample's outcome (attributes of the same names), in this order, after url and key.
OUTCOME_COLUMNS = (
    (STATUS, "string"),
    (ERROR_MESSAGE, "string"),
    ("width", "int32"),
    ("height", "int32"),
    ("original_width", "int32"),
    ("original_height", "int32"),
)
RESERVED_COLUMNS = frozenset({URL, CAPTION, KEY, EXIF, *HASHES, *(name for name, _ in OUTCOME_COLUMNS)})

# Added by the driver so that a worker knows where each row goes; never written out.
SHARD_COL = "_img2ds_shard"
INDEX_COL = "_img2ds_index"


@dataclass(frozen=True)
class MetadataColumns:
    """Which optional columns a run writes; builds the parquet schema and the rows."""

    additional: tuple[str, ...] = ()
    caption: bool = False
    exif: bool = False
    hash_name: str | None = None
    constants: tuple[tuple[str, Any], ...] = ()  # the metadata option: set on every row that lacks the column

    def schema(self, additional_fields: Sequence[pa.Field]) -> pa.Schema:
        """The metadata schema; additional_fields are the input's fields of the additional columns."""
        import pyarrow as pa

        fields = list(additional_fields)
        fields += [pa.field(k, pa.scalar(v).type) for k, v in self.constants if k not in self.additional]
        if self.caption:
            fields.append(pa.field(CAPTION, pa.string()))
        fields += [pa.field(URL, pa.string()), pa.field(KEY, pa.string())]
        fields += [pa.field(name, pa.type_for_alias(kind)) for name, kind in OUTCOME_COLUMNS]
        if self.exif:
            fields.append(pa.field(EXIF, pa.string()))
        if self.hash_name:
            fields.append(pa.field(self.hash_name, pa.string()))
        return pa.schema(fields)

    def row(self, additional: Sequence[Any], caption: str | None, url: str | None, key: str, outcome: Any) -> dict:
        """One metadata row, in column order; outcome has the OUTCOME_COLUMNS, exif and hash as attributes."""
        meta = dict(zip(self.additional, additional, strict=True))
        for name, value in self.constants:
            meta.setdefault(name, value)
        if self.caption:
            meta[CAPTION] = caption
        meta[URL] = url
        meta[KEY] = key
        for name, _ in OUTCOME_COLUMNS:
            meta[name] = getattr(outcome, name)
        if self.exif:
            meta[EXIF] = outcome.exif
        if self.hash_name:
            meta[self.hash_name] = outcome.hash
        return meta
