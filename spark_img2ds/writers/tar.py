"""A ustar archive written straight to any binary file object.

tarfile builds every header through TarInfo and its generic encoder, about
0.1 ms per member; a shard writes two or three members per image. The bytes
here are the ones ``tarfile.open(fileobj, "w|", format=USTAR_FORMAT)`` writes
for the same members with mode 0644, uid/gid 0, empty owner names and mtime 0
(the tests compare them), so archives stay reproducible and readable by
tarfile, webdataset and GNU tar.
"""

from __future__ import annotations

from typing import IO

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile's RECORDSIZE: an archive is padded to a whole record
_MODE = b"0000644\x00"
_ZERO8 = b"0000000\x00"
_MTIME = b"00000000000\x00"
_MAGIC = b"ustar\x0000"
_NUL = b"\x00"


def _split_name(name: bytes) -> tuple[bytes, bytes]:
    """(prefix, name) as ustar stores a path of up to 255 bytes; ValueError if it cannot."""
    if len(name) <= 100:
        return b"", name
    cut = name.find(b"/")
    while 0 < cut <= 155:  # the shortest prefix that leaves a name of <= 100 bytes, as tarfile picks
        if len(name) - cut - 1 <= 100:
            return name[:cut], name[cut + 1 :]
        cut = name.find(b"/", cut + 1)
    raise ValueError(f"name too long for a ustar archive: {name[:60]!r}...")


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte header of a regular file member."""
    if size >= 8**11:
        raise ValueError("member too large for a ustar header")
    prefix, short = _split_name(name.encode("utf-8"))
    head = (
        short.ljust(100, _NUL)
        + _MODE
        + _ZERO8
        + _ZERO8
        + b"%011o\x00" % size
        + _MTIME
        + b"        "
        + b"0"
        + bytes(100)
        + _MAGIC
        + bytes(32)  # uname
        + bytes(32)  # gname
        + bytes(16)  # devmajor, devminor: empty for a regular file, as tarfile leaves them
        + prefix.ljust(155, _NUL)
    ).ljust(BLOCK, _NUL)
    checksum = b"%06o\x00" % sum(head)
    return head[:148] + checksum + head[155:]


class TarStream:
    """Appends members to a file object; close() writes the end-of-archive blocks."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.offset = 0

    def add(self, name: str, data: bytes) -> None:
        self.f.write(ustar_header(name, len(data)))
        self.f.write(data)
        pad = -len(data) % BLOCK
        if pad:
            self.f.write(bytes(pad))
        self.offset += BLOCK + len(data) + pad

    def close(self) -> None:
        end = self.offset + 2 * BLOCK
        self.f.write(bytes(2 * BLOCK + (-end % RECORD)))
        self.offset = 0
