"""Key and shard-name formats (img2dataset's layout)."""

from __future__ import annotations

import pytest

from spark_img2ds.config import Config
from spark_img2ds.dataset.layout import index_digits, parse_shard_name, sample_key, shard_count, shard_name


@pytest.mark.parametrize(
    ("per_shard", "digits"),
    [(1, 0), (2, 1), (9, 1), (10, 1), (11, 2), (100, 2), (101, 3), (1000, 3), (10000, 4), (10001, 5)],
)
def test_index_digits_is_ceil_log10(per_shard, digits):
    assert index_digits(per_shard) == digits


@pytest.mark.parametrize("per_shard", [1, 10, 11, 10000, 12345])
def test_config_oom_sample_per_shard_agrees_with_the_layout(per_shard):
    cfg = Config(url_list="x", output_format="webdataset", number_sample_per_shard=per_shard)
    assert cfg.oom_sample_per_shard == index_digits(per_shard)


def test_sample_key_default_layout():
    # number_sample_per_shard=10000 -> d=4, oom_shard_count=5 -> 9 digits
    assert sample_key(3, 42, 4, 5) == "000030042"
    assert sample_key(0, 0, 4, 5) == "000000000"
    assert sample_key(0, 9999, 4, 5) == "000009999"
    assert sample_key(1, 0, 4, 5) == "000010000"
    assert sample_key(12345, 6789, 4, 5) == "123456789"


def test_sample_key_one_sample_per_shard():
    d = index_digits(1)
    assert d == 0
    assert sample_key(0, 0, d, 5) == "00000"
    assert sample_key(7, 0, d, 5) == "00007"
    assert sample_key(123, 0, d, 3) == "123"


def test_sample_key_ten_samples_per_shard():
    d = index_digits(10)
    assert d == 1
    assert sample_key(0, 9, d, 5) == "000009"
    assert sample_key(3, 4, d, 5) == "000034"
    assert sample_key(42, 0, d, 2) == "420"


def test_sample_key_widens_when_shard_id_overflows_padding():
    # no truncation: the number is written in full
    assert sample_key(123456, 1, 4, 5) == "1234560001"


def test_keys_are_unique_and_sorted_with_position():
    per_shard = 7
    d = index_digits(per_shard)
    keys = []
    for position in range(100):
        shard, index = divmod(position, per_shard)
        keys.append(sample_key(shard, index, d, 3))
    assert len(set(keys)) == 100
    assert keys == sorted(keys)
    assert all(len(k) == 3 + d for k in keys)
    assert keys[7] == "0010"  # shard 1, index 0


def test_shard_name_is_zero_padded():
    assert shard_name(3, 5) == "00003"
    assert shard_name(0, 5) == "00000"
    assert shard_name(42, 2) == "42"
    assert shard_name(123, 2) == "123"


@pytest.mark.parametrize(
    ("rows", "per_shard", "expected"),
    [(0, 10, 0), (1, 10, 1), (10, 10, 1), (11, 10, 2), (10000, 10000, 1), (10001, 10000, 2), (5, 1, 5)],
)
def test_shard_count(rows, per_shard, expected):
    assert shard_count(rows, per_shard) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("00042_stats.json", 42),
        ("00042.tar", 42),
        ("00042.parquet", 42),
        ("00000_stats.json", 0),
        ("00003", 3),
        ("_summary.json", None),
        ("summary.json", None),
        ("stats_00042.json", None),
        ("", None),
        ("4a2_stats.json", None),
    ],
)
def test_parse_shard_name(name, expected):
    assert parse_shard_name(name) == expected


def test_parse_shard_name_inverts_shard_name():
    for shard in (0, 1, 99, 12345):
        assert parse_shard_name(shard_name(shard, 5) + "_stats.json") == shard
        assert parse_shard_name(shard_name(shard, 5) + ".tar") == shard
