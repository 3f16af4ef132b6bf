"""tfrecord: {shard}.tfrecord with one tf.train.Example per successful sample, as img2dataset writes them.

Features: key, the image bytes under the encode_format's name, txt (with caption_col),
and every metadata field: ints (and booleans) as int64_list, floats as float_list, the
rest as bytes_list (text as UTF-8, null as empty bytes). TensorFlow is not needed: an
Example is three nested protobuf messages, encoded here with sorted feature names so the
same sample gives the same bytes, and each record is framed as TFRecord frames it:
length (uint64), masked CRC32C of the length, the data, masked CRC32C of the data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO, Any

import crc32c
import fsspec

from spark_img2ds.dataset.columns import SUCCESS
from spark_img2ds.dataset.storage import join
from spark_img2ds.writers.base import ShardWriter

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's checksum: CRC32C rotated right by 15 bits, plus a constant (mod 2**32)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the record, its masked CRC."""
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc(length)) + record + struct.pack("<I", masked_crc(record))


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # int64 as protobuf writes it: negatives in ten bytes
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def feature(value: Any) -> bytes:
    """A tf.train.Feature for a metadata value, with img2dataset's typing."""
    if isinstance(value, bool | int):
        return _field(3, _field(1, _varint(int(value))))
    if isinstance(value, float):
        return _field(2, _field(1, struct.pack("<f", value)))
    if value is None:
        data = b""
    elif isinstance(value, bytes):
        data = value
    else:
        data = str(value).encode("utf-8")
    return _field(1, _field(1, data))


def example(features: dict[str, Any]) -> bytes:
    """A serialised tf.train.Example of {name: value} (names sorted, so the bytes are reproducible)."""
    entries = b"".join(
        _field(1, _field(1, name.encode("utf-8")) + _field(2, feature(value)))
        for name, value in sorted(features.items())
    )
    return _field(1, entries)


def read_records(f: IO[bytes]) -> Iterator[bytes]:
    """The records of a TFRecord file, framing and checksums verified (ValueError on a damaged file)."""
    while head := f.read(12):
        if len(head) < 12 or struct.unpack("<I", head[8:])[0] != masked_crc(head[:8]):
            raise ValueError("damaged TFRecord: bad length header")
        (length,) = struct.unpack("<Q", head[:8])
        record, tail = f.read(length), f.read(4)
        if len(record) < length or len(tail) < 4 or struct.unpack("<I", tail)[0] != masked_crc(record):
            raise ValueError("damaged TFRecord: truncated record or bad checksum")
        yield record


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("damaged protobuf: bad varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, payload) of the length-delimited fields of a message (the only kind an Example nests)."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        if tag & 7 != 2:
            raise ValueError("damaged Example: a field that is not length-delimited")
        size, pos = _read_varint(data, pos)
        if pos + size > len(data):
            raise ValueError("damaged Example: a field runs past the end")
        yield tag >> 3, data[pos : pos + size]
        pos += size


def bytes_feature(record: bytes, name: str) -> bytes | None:
    """The first value of a bytes_list feature of a serialised Example (None if it has none by that name)."""
    wanted = name.encode("utf-8")
    for _, features in _fields(record):
        for _, entry in _fields(features):
            parts = dict(_fields(entry))
            if parts.get(1) == wanted:
                kind = dict(_fields(parts.get(2, b"")))
                values = [v for n, v in _fields(kind.get(1, b"")) if n == 1]
                return values[0] if values else None
    return None


class TFRecordWriter(ShardWriter):
    def open_outputs(self) -> None:
        self.out: IO[bytes] = self.open(f"{self.shard}.tfrecord")

    def write_sample(self, key: str, image: bytes, caption: str | None, meta: dict[str, Any]) -> None:
        features = dict(meta)
        features["key"] = key.encode()
        features[self.image_ext] = image
        if self.cfg.caption_col:
            features["txt"] = caption or ""
        self.out.write(frame(example(features)))

    @classmethod
    def stored_samples(cls, fs: fsspec.AbstractFileSystem, root: str, shard: str) -> Iterator[tuple[str, Any]]:
        """(key, the record as stored) per Example of the committed file."""
        with fs.open(join(root, f"{shard}.tfrecord"), "rb") as f:
            for record in read_records(f):
                key = bytes_feature(record, "key")
                if key is None:
                    raise ValueError(f"{shard}.tfrecord holds an Example without a key")
                yield key.decode(), record

    @classmethod
    def stored_rows(cls, status: str) -> bool:
        return status == SUCCESS

    def keep_sample(self, key: str, stored: Any) -> None:
        self.out.write(frame(stored))
