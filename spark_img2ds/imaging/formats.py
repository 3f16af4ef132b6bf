"""What an image file is and what its header says, read from its bytes without decoding it."""

from __future__ import annotations

from collections.abc import Iterator

PIXELS_MESSAGE = "image has more pixels than max_image_pixels"
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


def jpeg_components(data: bytes) -> int | None:
    """Colour components of a JPEG's frame (1 grey, 3 colour, 4 CMYK); None if absent."""
    for marker, pos in _jpeg_markers(data):
        if marker in _SOF_MARKERS:
            return data[pos + 9] if pos + 9 < len(data) else None
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


def _u16(data: bytes, pos: int, order: str) -> int:
    return int.from_bytes(data[pos : pos + 2], order)  # type: ignore[arg-type]


def _u32(data: bytes, pos: int, order: str) -> int:
    return int.from_bytes(data[pos : pos + 4], order)  # type: ignore[arg-type]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return _u32(data, 16, "big"), _u32(data, 20, "big")


def _gif_size(data: bytes) -> tuple[int, int] | None:
    """The logical screen, and no frame of the first image larger than it."""
    if len(data) < 11:
        return None
    width, height = _u16(data, 6, "little"), _u16(data, 8, "little")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while pos < len(data):  # skip extensions up to the first image descriptor
        if data[pos] == 0x2C and pos + 9 <= len(data):
            width = max(width, _u16(data, pos + 1, "little") + _u16(data, pos + 5, "little"))
            height = max(height, _u16(data, pos + 3, "little") + _u16(data, pos + 7, "little"))
            break
        if data[pos] != 0x21 or pos + 2 > len(data):
            break
        pos += 2
        while pos < len(data) and data[pos]:
            pos += data[pos] + 1
        pos += 1
    return width, height


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    if _u32(data, 14, "little") == 12:  # OS/2 BITMAPCOREHEADER
        return _u16(data, 18, "little"), _u16(data, 20, "little")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)  # negative: stored top-down
    return abs(width), abs(height)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        return _u16(data, 26, "little") & 0x3FFF, _u16(data, 28, "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = _u32(data, 21, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first IFD."""
    order = "little" if data[:2] == b"II" else "big"
    pos = _u32(data, 4, order)
    if pos + 2 > len(data):
        return None
    found: dict[int, int] = {}
    for i in range(min(_u16(data, pos, order), 512)):
        entry = pos + 2 + 12 * i
        if entry + 12 > len(data):
            break
        tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
        if tag in (256, 257):
            found[tag] = _u16(data, entry + 8, order) if kind == 3 else _u32(data, entry + 8, order)
    return (found[256], found[257]) if len(found) == 2 else None


_SIZE_READERS = {"png": _png_size, "gif": _gif_size, "bmp": _bmp_size, "webp": _webp_size, "tiff": _tiff_size}


def image_dimensions(data: bytes, fmt: str | None) -> tuple[int, int] | None:
    """(width, height) as the file's header declares them, before any decode; None if it cannot tell.

    Read for every format the job decodes, so that a few kilobytes declaring 30000x30000
    pixels are refused before OpenCV allocates them (JPEG: as stored, before EXIF rotation).
    """
    if fmt == "jpg":
        return jpeg_size(data)
    reader = _SIZE_READERS.get(fmt or "")
    return reader(data) if reader is not None else None


class HeaderError(ValueError):
    """What an image's header says that stops it before any decode; the message is the reason."""


def declared_size(data: bytes, fmt: str | None, max_pixels: float) -> tuple[int, int]:
    """The checked (width, height) of the header: HeaderError if unreadable, empty or over max_pixels.

    The one check the image path (imaging/process.py) and the array path (arrays/pixels.py)
    both run before decoding; each raises its own error with the reason.
    """
    size = image_dimensions(data, fmt)
    if size is None:
        raise HeaderError("not a supported image format" if fmt is None else f"unreadable {fmt} header")
    if not size[0] or not size[1]:
        raise HeaderError("empty image")
    if size[0] * size[1] > max_pixels:
        raise HeaderError(PIXELS_MESSAGE)
    return size


def _png_chunk(data: bytes, wanted: bytes) -> bytes | None:
    pos = 8
    while pos + 8 <= len(data):
        size, kind = _u32(data, pos, "big"), data[pos + 4 : pos + 8]
        if kind == wanted:
            return data[pos + 8 : pos + 8 + size]
        if kind == b"IEND":
            return None
        pos += 12 + size
    return None


def _webp_chunk(data: bytes, wanted: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], _u32(data, pos + 4, "little")
        if kind == wanted:
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def exif_orientation(data: bytes, fmt: str | None) -> int:
    """The EXIF orientation (1-8) of a PNG or WebP; 1 when absent (OpenCV applies JPEG's itself)."""
    block = _png_chunk(data, b"eXIf") if fmt == "png" else _webp_chunk(data, b"EXIF") if fmt == "webp" else None
    if not block:
        return 1
    if block.startswith(b"Exif\x00\x00"):
        block = block[6:]
    if block[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1
    order = "little" if block[:2] == b"II" else "big"
    pos = _u32(block, 4, order)
    for i in range(min(_u16(block, pos, order), 512) if pos + 2 <= len(block) else 0):
        entry = pos + 2 + 12 * i
        if entry + 10 <= len(block) and _u16(block, entry, order) == 0x0112:
            value = _u16(block, entry + 8, order)
            return value if 1 <= value <= 8 else 1
    return 1


def png_color_type(data: bytes) -> int | None:
    """A PNG's colour type from IHDR (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA)."""
    return data[25] if len(data) > 25 and data[12:16] == b"IHDR" else None
