"""Per-shard statistics and their merging (pure functions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.columns import FAILED_TO_DOWNLOAD, STATUSES, SUCCESS

MAX_DISTINCT_ERRORS = 1000
OTHER_ERRORS = "other errors (too many distinct messages)"
MAX_DISTINCT_VALUES = 10000  # shapes, classes and splits counted by name; the rest under OTHER_VALUES
OTHER_VALUES = "(other)"
# The dataset statistics of successful samples: (field, key in the stats file and summary).
STATISTICS_KEY = "dataset_statistics"
DISTRIBUTIONS = (("shapes", "shape_distribution"), ("classes", "class_counts"), ("splits", "split_counts"))
POLITENESS_KEY = "politeness"  # requests delayed for their host, hosts that answered 429/503


def count_capped(counter: Counter, key: str, n: int = 1) -> None:
    """Count a value, folding new ones into OTHER_VALUES once MAX_DISTINCT_VALUES are known."""
    if key not in counter and len(counter) >= MAX_DISTINCT_VALUES:
        key = OTHER_VALUES
    counter[key] += n


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
    shapes: Counter = field(default_factory=Counter)
    classes: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    missing_labels: int = 0
    requests_delayed: int = 0  # downloads that waited for their host (politeness)
    throttled_hosts: Counter = field(default_factory=Counter)  # host -> 429/503 answers that started a cool-down
    unanswered_hosts: Counter = field(default_factory=Counter)  # host -> rows lost to connection timeouts or skips

    def record_politeness(self, delayed: bool, throttled_host: str | None, unanswered_host: str | None = None) -> None:
        """What a download's politeness cost: a wait for its host, a cool-down its host asked for, a host
        that did not answer (its connection timed out, or it was skipped for that)."""
        self.requests_delayed += bool(delayed)
        if throttled_host:
            count_capped(self.throttled_hosts, throttled_host)
        if unanswered_host:
            count_capped(self.unanswered_hosts, unanswered_host)

    def record_valid(self, shape: str | None, label: Any = None, split: Any = None, labelled: bool = False) -> None:
        """What a successful sample adds to the dataset statistics (labelled: a label column is configured)."""
        count_capped(self.shapes, shape or "unknown")
        if labelled:
            if label is None or label == "":
                self.missing_labels += 1
            else:
                count_capped(self.classes, str(label))
        if split is not None and split != "":
            count_capped(self.splits, str(split))

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

    def forget(self, status: str, error_message: str | None) -> None:
        """Take back what record() counted for a failed row, before the row is downloaded again."""
        if status == SUCCESS:
            raise ValueError("only a failed row is taken back")
        self.count -= 1
        if status == FAILED_TO_DOWNLOAD:
            self.failed_to_download -= 1
        else:
            self.failed_to_resize -= 1
        message = error_message or status
        if message not in self.status_dict:
            message = OTHER_ERRORS
        self.status_dict[message] -= 1
        if self.status_dict[message] <= 0:
            del self.status_dict[message]

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
            # Ours, in one key beside img2dataset's so that its readers see the file they know.
            STATISTICS_KEY: {
                **{key: dict(getattr(self, name)) for name, key in DISTRIBUTIONS},
                "missing_labels": self.missing_labels,
            },
            POLITENESS_KEY: {
                "requests_delayed": self.requests_delayed,
                "throttled_hosts": dict(self.throttled_hosts),
                "unanswered_hosts": dict(self.unanswered_hosts),
            },
        }

    @classmethod
    def from_json(cls, shard_id: int, data: dict[str, Any]) -> ShardStats:
        extra = data.get(STATISTICS_KEY) or {}
        polite = data.get(POLITENESS_KEY) or {}
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
            **{name: Counter(extra.get(key) or {}) for name, key in DISTRIBUTIONS},
            missing_labels=int(extra.get("missing_labels", 0)),
            requests_delayed=int(polite.get("requests_delayed", 0)),
            throttled_hosts=Counter(polite.get("throttled_hosts") or {}),
            unanswered_hosts=Counter(polite.get("unanswered_hosts") or {}),
        )


def merge(shards: Iterable[ShardStats]) -> dict[str, Any]:
    """Totals over shards: counts per status and per error message."""
    total = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0, "bytes_downloaded": 0}
    errors: Counter = Counter()
    distributions: dict[str, Counter] = {key: Counter() for _, key in DISTRIBUTIONS}
    missing = delayed = 0
    throttled: Counter = Counter()
    unanswered: Counter = Counter()
    for s in shards:
        missing += s.missing_labels
        delayed += s.requests_delayed
        for host, n in s.throttled_hosts.items():
            count_capped(throttled, host, n)
        for host, n in s.unanswered_hosts.items():
            count_capped(unanswered, host, n)
        for name, key in DISTRIBUTIONS:
            for value, n in getattr(s, name).items():
                count_capped(distributions[key], value, n)
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
    total.update({key: dict(counter.most_common()) for key, counter in distributions.items()})
    total["missing_labels"] = missing
    total["requests_delayed"] = delayed
    total["throttled_hosts"] = dict(throttled.most_common())
    total["unanswered_hosts"] = dict(unanswered.most_common())
    total["valid"], total["invalid"], total["total"] = (
        total["successes"],
        total["count"] - total["successes"],
        total["count"],
    )
    return total


def committed_shards(fs, root: str) -> dict[int, ShardStats]:
    """The shards of a dataset whose stats marker exists (they are complete), with their stats."""
    paths = fs.glob(storage.join(root, f"*{layout.STATS_SUFFIX}"))
    found = storage.read_json_files(fs, paths)
    done = {}
    for path, data in found.items():
        shard_id = layout.parse_shard_name(path.rsplit("/", 1)[-1])
        if shard_id is not None:
            done[shard_id] = ShardStats.from_json(shard_id, data)
    return done


def wants_retry(status: str | None, error_message: str | None, patterns: list[str] | None) -> bool:
    """Whether a row is downloaded again: it failed, and (with patterns) its error contains one of them."""
    if status == SUCCESS:
        return False
    if not patterns:
        return True
    text = (error_message or status or "").lower()
    return any(p.lower() in text for p in patterns)
