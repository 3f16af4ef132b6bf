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
from typing import IO, Any

import crc32c

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
