"""TFRecord framing and tf.train.Example encoding, read back by independent code: protobuf and the tfrecord package.

TensorFlow itself is not installed; the tfrecord package (test dependency) parses with
protobuf's generated Example class and checks no CRC, so the CRCs are checked here
against the format's definition computed with a plain bitwise CRC32C.
"""

from __future__ import annotations

import io
import struct
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator

from spark_img2ds.writers.tfrecord import bytes_feature, example, frame, masked_crc, read_records


def bitwise_crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_values():
    assert bitwise_crc32c(b"123456789") == 0xE3069283  # the standard check value
    crc = bitwise_crc32c(b"123456789")
    assert masked_crc(b"123456789") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def parse(record: bytes) -> dict:
    ex = example_pb2.Example()
    ex.ParseFromString(record)
    out = {}
    for name, feat in ex.features.feature.items():
        kind = feat.WhichOneof("kind")
        out[name] = (kind, list(getattr(feat, kind).value))
    return out


def test_example_types_follow_img2dataset():
    record = example({"key": b"000010002", "jpg": b"\xff\xd8", "txt": "un chat", "width": 256, "ok": True,
                      "score": 0.25, "missing": None, "neg": -3})  # fmt: skip
    assert parse(record) == {
        "key": ("bytes_list", [b"000010002"]),
        "jpg": ("bytes_list", [b"\xff\xd8"]),
        "txt": ("bytes_list", [b"un chat"]),
        "width": ("int64_list", [256]),
        "ok": ("int64_list", [1]),
        "score": ("float_list", [0.25]),
        "missing": ("bytes_list", [b""]),
        "neg": ("int64_list", [-3]),
    }


metadata = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.floats(width=32, allow_nan=False),
        st.text(max_size=40),
        st.binary(max_size=40),
        st.none(),
        st.booleans(),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(metadata, min_size=1, max_size=5))
def test_records_round_trip_through_the_tfrecord_reader(rows):
    stream = b"".join(frame(example(r)) for r in rows)
    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as f:
        f.write(stream)
        f.flush()
        records = [bytes(r) for r in tfrecord_iterator(f.name)]
    assert len(records) == len(rows)
    for raw, row in zip(records, rows, strict=True):
        got = parse(raw)
        assert set(got) == set(row)
        for name, value in row.items():
            kind, values = got[name]
            if isinstance(value, bool | int):
                assert (kind, values) == ("int64_list", [int(value)])
            elif isinstance(value, float):
                assert kind == "float_list" and values == [struct.unpack("<f", struct.pack("<f", value))[0]]
            else:
                expected = b"" if value is None else value if isinstance(value, bytes) else value.encode()
                assert (kind, values) == ("bytes_list", [expected])
    pos = 0
    for _ in rows:  # the framing's checksums, against the format's definition
        length = stream[pos : pos + 8]
        (n,) = struct.unpack("<Q", length)
        assert struct.unpack("<I", stream[pos + 8 : pos + 12])[0] == _masked(bitwise_crc32c(length))
        data = stream[pos + 12 : pos + 12 + n]
        assert struct.unpack("<I", stream[pos + 12 + n : pos + 16 + n])[0] == _masked(bitwise_crc32c(data))
        pos += 16 + n
    assert pos == len(stream)


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_the_same_features_give_the_same_bytes_whatever_their_order():
    assert example({"a": 1, "b": "x"}) == example({"b": "x", "a": 1})


@settings(max_examples=200, deadline=None)
@given(st.lists(metadata, min_size=0, max_size=5), st.binary(min_size=1, max_size=40))
def test_our_reader_takes_back_what_the_writer_framed_and_keys(rows, key):
    """The reader a retry uses (read_records, bytes_feature) against protobuf's parse of the same records."""
    records = [example({**r, "key": key}) for r in rows]
    stream = b"".join(frame(r) for r in records)
    assert list(read_records(io.BytesIO(stream))) == records
    for record in records:
        assert bytes_feature(record, "key") == key == parse(record)["key"][1][0]
        assert bytes_feature(record, "no such feature") is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_damaged_bytes_fail_with_value_error_only(data):
    try:
        list(read_records(io.BytesIO(data)))
    except ValueError:
        pass
    try:
        bytes_feature(data, "key")
    except ValueError:
        pass


def test_a_flipped_byte_or_a_cut_is_detected():
    stream = frame(example({"key": b"000001", "jpg": b"x" * 50}))
    for pos in (0, 9, 20, len(stream) - 1):
        damaged = bytearray(stream)
        damaged[pos] ^= 0x40
        try:
            list(read_records(io.BytesIO(bytes(damaged))))
        except ValueError as err:
            assert "damaged TFRecord" in str(err)
        else:
            raise AssertionError(f"a flipped byte at {pos} went unnoticed")
    try:
        list(read_records(io.BytesIO(stream[:-3])))
    except ValueError as err:
        assert "truncated" in str(err)
    else:
        raise AssertionError("a cut record went unnoticed")
