"""EXIF tags of the downloaded bytes, as img2dataset stores them (a JSON object string)."""

from __future__ import annotations

import io
import json
import logging

from spark_img2ds.imaging.formats import has_exif

logging.getLogger("exifread").setLevel(logging.CRITICAL)


def extract_exif(data: bytes, fmt: str | None) -> str:
    """EXIF tags as a JSON object string; "{}" when there are none or they cannot be read. fmt: sniff_format(data)."""
    import exifread

    if not has_exif(data, fmt):
        return "{}"
    try:
        tags = exifread.process_file(io.BytesIO(data), details=False)
    except Exception:  # exifread raises many kinds of errors on damaged tags
        return "{}"
    return json.dumps({k: str(v).strip() for k, v in tags.items() if v is not None})
