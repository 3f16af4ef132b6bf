"""Per-shard statistics and their merging (pure functions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spark_img2ds.dataset.columns import FAILED_TO_DOWNLOAD, STATUSES, SUCCESS

MAX_DISTINCT_ERRORS = 1000
OTHER_ERRORS = "other errors (too many distinct messages)"


def add_capped(counter: Counter, key: str, n: int = 1) -> None:
    """Count an error message, folding new ones into one bucket once MAX_DISTINCT_ERRORS are known."""
    distinct = len(counter) - (SUCCESS in counter) - (OTHER_ERRORS in counter)
    if key not in counter and distinct >= MAX_DISTINCT_ERRORS:
        key = OTHER_ERRORS
    counter[key] += n


@dataclass
class ShardStats:
    """What one shard did; serialised as img2dataset's {shard}_stats.json."""

    shard_id: int
    count: int = 0
    successes: int = 0
    failed_to_download: int = 0
    failed_to_resize: int = 0
    bytes_downloaded: int = 0
    start_time: float = 0.0
    end_time: float = 0.0
    status_dict: Counter = field(default_factory=Counter)

    def record(self, status: str, error_message: str | None, nbytes: int) -> None:
        self.count += 1
        self.bytes_downloaded += nbytes
        if status == SUCCESS:
            self.successes += 1
            self.status_dict[SUCCESS] += 1
        else:
            if status == FAILED_TO_DOWNLOAD:
                self.failed_to_download += 1
            else:
                self.failed_to_resize += 1
            add_capped(self.status_dict, error_message or status)

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "successes": self.successes,
            "failed_to_download": self.failed_to_download,
            "failed_to_resize": self.failed_to_resize,
            "duration": self.duration,
            "bytes_downloaded": self.bytes_downloaded,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "status_dict": dict(self.status_dict),
        }

    @classmethod
    def from_json(cls, shard_id: int, data: dict[str, Any]) -> ShardStats:
        return cls(
            shard_id=shard_id,
            count=int(data.get("count", 0)),
            successes=int(data.get("successes", 0)),
            failed_to_download=int(data.get("failed_to_download", 0)),
            failed_to_resize=int(data.get("failed_to_resize", 0)),
            bytes_downloaded=int(data.get("bytes_downloaded", 0)),
            start_time=float(data.get("start_time", 0.0)),
            end_time=float(data.get("end_time", 0.0)),
            status_dict=Counter(data.get("status_dict", {})),
        )


def merge(shards: Iterable[ShardStats]) -> dict[str, Any]:
    """Totals over shards: counts per status and per error message."""
    total = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0, "bytes_downloaded": 0}
    errors: Counter = Counter()
    for s in shards:
        total["count"] += s.count
        total["successes"] += s.successes
        total["failed_to_download"] += s.failed_to_download
        total["failed_to_resize"] += s.failed_to_resize
        total["bytes_downloaded"] += s.bytes_downloaded
        for message, n in s.status_dict.items():
            if message != SUCCESS:
                add_capped(errors, message, n)
    total["status_counts"] = {SUCCESS: total["successes"], **{s: total[s] for s in STATUSES[1:]}}
    total["error_counts"] = dict(errors.most_common())
    return total
