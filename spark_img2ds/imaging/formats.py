"""What an image file is and what its header says, read from its bytes without decoding it."""

from __future__ import annotations

from collections.abc import Iterator

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def sniff_format(data: bytes) -> str | None:
    """Image container from magic bytes: jpg, png, webp, gif, bmp, tiff or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"GIF8",):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def _jpeg_markers(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset) of each JPEG segment up to the image data, walked by segment lengths.

    The walk ends after yielding end of image (0xD9) or start of scan (0xDA); ending
    without one of those means the bytes did not parse as JPEG segments.
    """
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        yield marker, pos
        if marker in (0xD9, 0xDA):
            return
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, as stored (before EXIF orientation); None if absent."""
    for marker, pos in _jpeg_markers(data):
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return (width, height) if width and height else None
    return None


def _jpeg_has_exif(data: bytes) -> bool | None:
    """Whether an APP1 segment before the frame header holds EXIF; None if the markers do not parse."""
    for marker, pos in _jpeg_markers(data):
        if marker in _SOF_MARKERS or marker in (0xD9, 0xDA):
            return False  # EXIF comes before the image data
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return True
    return None


def _png_has_exif(data: bytes) -> bool | None:
    """Whether the chunk list has an eXIf chunk (before or after the image data); None if it does not parse."""
    pos, end = 8, len(data)
    while pos + 8 <= end:
        kind = data[pos + 4 : pos + 8]
        if kind == b"eXIf":
            return True
        if kind == b"IEND":
            return False
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return None


def has_exif(data: bytes, fmt: str | None) -> bool:
    """True when the file carries an EXIF block: parsing is slow, so look first.

    JPEG markers and PNG chunks are walked by their lengths, which reads a few bytes
    where a search read 64 KiB (a whole PNG); a file whose structure does not parse
    is searched instead, so that a damaged file loses no EXIF it has.
    """
    if fmt == "jpg":
        found = _jpeg_has_exif(data)
        return data.find(b"Exif\x00\x00", 0, 65536) >= 0 if found is None else found
    if fmt == "png":
        found = _png_has_exif(data)
        return b"eXIf" in data if found is None else found
    if fmt == "webp":
        return data.find(b"EXIF", 0, 65536) >= 0
    return fmt == "tiff"
