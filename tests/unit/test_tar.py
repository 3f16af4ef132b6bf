"""The ustar writer: the same bytes as tarfile's stream writer, read back by tarfile."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from spark_img2ds.writers.tar import BLOCK, RECORD, TarStream, ustar_header

MEMBERS = [
    ("000000001.jpg", b"\xff\xd8" + bytes(range(256)) * 40),
    ("000000001.json", b'{"key": "000000001"}'),
    ("000000001.txt", b""),
    ("exactly-one-block", b"q" * BLOCK),
    ("n" * 100, b"name of exactly 100 bytes"),
    ("deep/" * 30 + "file.txt", b"a name that needs the ustar prefix field"),
    ("caf\u00e9/\u00e9t\u00e9.json", b"utf-8 names"),
]


def with_tarfile(members) -> bytes:
    """What tarfile writes in stream mode for the same members and fixed metadata."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def with_stream(members) -> bytes:
    out = io.BytesIO()
    tar = TarStream(out)
    for name, data in members:
        tar.add(name, data)
    tar.close()
    return out.getvalue()


@pytest.mark.parametrize("count", [0, 1, 3, len(MEMBERS)])
def test_bytes_equal_tarfiles(count):
    assert with_stream(MEMBERS[:count]) == with_tarfile(MEMBERS[:count])


def test_archive_is_padded_to_whole_records_and_reads_back():
    data = with_stream(MEMBERS)
    assert len(data) % RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        got = [(m.name, tar.extractfile(m).read(), m.mode, m.mtime, m.uid) for m in tar.getmembers()]
    assert got == [(name, body, 0o644, 0, 0) for name, body in MEMBERS]


def test_gnu_tar_lists_the_members(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(with_stream(MEMBERS))
    listed = subprocess.run(["tar", "-tf", str(path)], capture_output=True, text=True, check=True).stdout
    assert listed.splitlines() == [name for name, _ in MEMBERS]


def test_header_is_one_block_with_a_valid_checksum():
    header = ustar_header("k.jpg", 1234)
    assert len(header) == BLOCK
    stored = int(header[148:154], 8)
    assert stored == sum(header[:148]) + 8 * 32 + sum(header[156:])


@pytest.mark.parametrize("name", ["x" * 101, "d/" + "x" * 101, "y" * 160 + "/z"])
def test_names_ustar_cannot_hold_are_refused(name):
    with pytest.raises(ValueError, match="too long"):
        ustar_header(name, 1)


def test_members_ustar_cannot_size_are_refused():
    assert len(ustar_header("big", 8**11 - 1)) == BLOCK
    with pytest.raises(ValueError, match="too large"):
        ustar_header("big", 8**11)
