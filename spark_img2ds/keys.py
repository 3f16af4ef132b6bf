"""Key and shard-name formats, as img2dataset writes them (pure functions)."""

from __future__ import annotations

import math

STATS_SUFFIX = "_stats.json"


def oom(number_sample_per_shard: int) -> int:
    """Digits needed for an index inside a shard: ceil(log10(samples per shard))."""
    return math.ceil(math.log10(number_sample_per_shard))


def shard_name(shard_id: int, oom_shard_count: int) -> str:
    """Zero-padded shard name, e.g. 00042."""
    return f"{shard_id:0{oom_shard_count}d}"


def stats_name(shard: str) -> str:
    """The shard's stats file, written last: its presence marks the shard complete."""
    return f"{shard}{STATS_SUFFIX}"


def sample_key(shard_id: int, index_in_shard: int, oom_sample_per_shard: int, oom_shard_count: int) -> str:
    """key = 10**d * shard_id + index, padded to oom_shard_count + d digits."""
    true_key = (10**oom_sample_per_shard) * shard_id + index_in_shard
    return f"{true_key:0{oom_shard_count + oom_sample_per_shard}d}"


def shard_of(position: int, number_sample_per_shard: int) -> tuple[int, int]:
    """(shard id, index in shard) of the row at a 0-based input position."""
    return divmod(position, number_sample_per_shard)


def shard_count(total_rows: int, number_sample_per_shard: int) -> int:
    return -(-total_rows // number_sample_per_shard)


def parse_shard_name(name: str) -> int | None:
    """Shard id from a file name like 00042_stats.json; None if it is not one."""
    head = name.split("_", 1)[0].split(".", 1)[0]
    return int(head) if head.isdigit() else None
