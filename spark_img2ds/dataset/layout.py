"""Names inside a dataset folder and the key format, as img2dataset writes them (pure functions).

{shard}.parquet        per-shard metadata, one row per input row (every format but dummy)
{shard}.tar / ...      the format's samples (see writers/)
{shard}_stats.json     written last: its presence marks the shard complete
_running/{shard}.json  heartbeats of shards being written (removed at the end of a run)
_job.json              the plan of the run under way (or last run), written by the driver when it starts
_summary.json          the run's summary, written by the driver
_SUCCESS               written when every shard is complete
"""

from __future__ import annotations

import math

STATS_SUFFIX = "_stats.json"
METADATA_SUFFIX = ".parquet"
SUMMARY_FILE = "_summary.json"
JOB_FILE = "_job.json"
SUCCESS_FILE = "_SUCCESS"
RUNNING_DIR = "_running"
EXTENDS_FILE = "_extends.json"  # incremental_mode=extend: which input went to which shards


def index_digits(number_sample_per_shard: int) -> int:
    """Digits of a sample's index inside its shard: ceil(log10(samples per shard))."""
    return math.ceil(math.log10(number_sample_per_shard))


def shard_name(shard_id: int, oom_shard_count: int) -> str:
    """Zero-padded shard name, e.g. 00042."""
    return f"{shard_id:0{oom_shard_count}d}"


def stats_name(shard: str) -> str:
    """The shard's stats file, written last: its presence marks the shard complete."""
    return f"{shard}{STATS_SUFFIX}"


def metadata_name(shard: str) -> str:
    """The shard's metadata parquet."""
    return f"{shard}{METADATA_SUFFIX}"


def running_name(shard: str) -> str:
    """The shard's heartbeat, relative to the dataset root."""
    return f"{RUNNING_DIR}/{shard}.json"


def sample_key(shard_id: int, index_in_shard: int, oom_sample_per_shard: int, oom_shard_count: int) -> str:
    """key = 10**d * shard_id + index, padded to oom_shard_count + d digits."""
    true_key = (10**oom_sample_per_shard) * shard_id + index_in_shard
    return f"{true_key:0{oom_shard_count + oom_sample_per_shard}d}"


def shard_count(total_rows: int, number_sample_per_shard: int) -> int:
    return -(-total_rows // number_sample_per_shard)


def parse_shard_name(name: str) -> int | None:
    """Shard id from a file name like 00042_stats.json; None if it is not one."""
    head = name.split("_", 1)[0].split(".", 1)[0]
    return int(head) if head.isdigit() else None
