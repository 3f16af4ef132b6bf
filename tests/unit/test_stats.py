"""Per-shard statistics and their merging."""

from __future__ import annotations

import json
from collections import Counter

from spark_img2ds.dataset.columns import STATUSES
from spark_img2ds.dataset.stats import MAX_DISTINCT_ERRORS, OTHER_ERRORS, ShardStats, add_capped, merge

STATS_KEYS = {
    "count",
    "successes",
    "failed_to_download",
    "failed_to_resize",
    "duration",
    "bytes_downloaded",
    "start_time",
    "end_time",
    "status_dict",
}


def sample_shard(shard_id: int = 0) -> ShardStats:
    s = ShardStats(shard_id, start_time=100.0, end_time=112.5)
    s.record("success", None, 1000)
    s.record("success", None, 2000)
    s.record("success", None, 500)
    s.record("failed_to_download", "HTTP error 404", 0)
    s.record("failed_to_download", "HTTP error 404", 0)
    s.record("failed_to_download", "timeout", 0)
    s.record("failed_to_resize", "image decoding error", 300)
    return s


def test_statuses():
    assert STATUSES == ("success", "failed_to_download", "failed_to_resize")


def test_record_counts_statuses_and_bytes():
    s = sample_shard()
    assert s.count == 7
    assert s.successes == 3
    assert s.failed_to_download == 3
    assert s.failed_to_resize == 1
    assert s.bytes_downloaded == 3800
    assert s.status_dict == Counter({"success": 3, "HTTP error 404": 2, "timeout": 1, "image decoding error": 1})


def test_record_success_ignores_message():
    s = ShardStats(1)
    s.record("success", "ignored", 10)
    assert s.status_dict == Counter({"success": 1})


def test_record_error_without_message_uses_status():
    s = ShardStats(1)
    s.record("failed_to_download", None, 0)
    s.record("failed_to_resize", "", 5)
    assert s.status_dict == Counter({"failed_to_download": 1, "failed_to_resize": 1})
    assert (s.failed_to_download, s.failed_to_resize, s.bytes_downloaded) == (1, 1, 5)


def test_empty_shard():
    data = ShardStats(9).to_json()
    assert data == {
        "count": 0,
        "successes": 0,
        "failed_to_download": 0,
        "failed_to_resize": 0,
        "duration": 0.0,
        "bytes_downloaded": 0,
        "start_time": 0.0,
        "end_time": 0.0,
        "status_dict": {},
        "dataset_statistics": {"shape_distribution": {}, "class_counts": {}, "split_counts": {}, "missing_labels": 0},
        "politeness": {"requests_delayed": 0, "throttled_hosts": {}, "unanswered_hosts": {}},
    }


def test_to_json_has_img2dataset_keys_and_two_of_ours():
    data = sample_shard().to_json()
    assert set(data) == STATS_KEYS | {"dataset_statistics", "politeness"}
    assert data["count"] == 7
    assert data["successes"] == 3
    assert data["failed_to_download"] == 3
    assert data["failed_to_resize"] == 1
    assert data["bytes_downloaded"] == 3800
    assert data["start_time"] == 100.0
    assert data["end_time"] == 112.5
    assert data["duration"] == 12.5
    assert data["status_dict"] == {"success": 3, "HTTP error 404": 2, "timeout": 1, "image decoding error": 1}
    assert type(data["status_dict"]) is dict


def test_to_json_is_json_serialisable():
    data = sample_shard().to_json()
    assert json.loads(json.dumps(data)) == data


def test_from_json_round_trips():
    original = sample_shard(4)
    restored = ShardStats.from_json(4, json.loads(json.dumps(original.to_json())))
    assert restored == original
    assert restored.to_json() == original.to_json()
    assert restored.duration == 12.5


def test_from_json_tolerates_missing_keys():
    s = ShardStats.from_json(2, {"count": 3, "successes": 3})
    assert (s.shard_id, s.count, s.successes, s.failed_to_download, s.bytes_downloaded) == (2, 3, 3, 0, 0)
    assert s.status_dict == Counter()


def test_merge_sums_shards():
    a = sample_shard(0)
    b = ShardStats(1)
    b.record("success", None, 10)
    b.record("failed_to_download", "timeout", 0)
    b.record("failed_to_download", "timeout", 0)
    b.record("failed_to_resize", "image too small", 20)
    total = merge([a, b])
    assert total["count"] == 11
    assert total["successes"] == 4
    assert total["failed_to_download"] == 5
    assert total["failed_to_resize"] == 2
    assert total["bytes_downloaded"] == 3830
    assert total["status_counts"] == {"success": 4, "failed_to_download": 5, "failed_to_resize": 2}
    assert total["error_counts"] == {
        "timeout": 3,
        "HTTP error 404": 2,
        "image decoding error": 1,
        "image too small": 1,
    }


def test_merge_error_counts_most_common_first():
    s = ShardStats(0)
    for message, n in [("a", 1), ("b", 5), ("c", 3)]:
        for _ in range(n):
            s.record("failed_to_download", message, 0)
    assert list(merge([s])["error_counts"].items()) == [("b", 5), ("c", 3), ("a", 1)]


def test_merge_error_counts_excludes_success():
    s = ShardStats(0)
    for _ in range(5):
        s.record("success", None, 1)
    total = merge([s])
    assert total["error_counts"] == {}
    assert total["status_counts"] == {"success": 5, "failed_to_download": 0, "failed_to_resize": 0}


def test_merge_of_nothing():
    total = merge([])
    assert total["count"] == 0
    assert total["status_counts"] == {"success": 0, "failed_to_download": 0, "failed_to_resize": 0}
    assert total["error_counts"] == {}


def test_merge_accepts_a_generator_of_reloaded_shards():
    shards = [sample_shard(i) for i in range(3)]
    total = merge(ShardStats.from_json(s.shard_id, s.to_json()) for s in shards)
    assert total["count"] == 21
    assert total["error_counts"]["HTTP error 404"] == 6


def test_add_capped_folds_new_keys_beyond_the_cap():
    c: Counter = Counter()
    for i in range(MAX_DISTINCT_ERRORS):
        add_capped(c, f"error {i}")
    assert len(c) == MAX_DISTINCT_ERRORS
    assert OTHER_ERRORS not in c
    add_capped(c, "error 0", 2)  # known keys still count
    add_capped(c, "new one")
    add_capped(c, "another new one", 4)
    assert c["error 0"] == 3
    assert c[OTHER_ERRORS] == 5
    assert "new one" not in c
    assert len(c) == MAX_DISTINCT_ERRORS + 1


def test_record_folds_distinct_errors_beyond_the_cap():
    s = ShardStats(0)
    extra = 7
    for i in range(MAX_DISTINCT_ERRORS + extra):
        s.record("failed_to_download", f"HTTP error from host{i}", 0)
    assert s.failed_to_download == MAX_DISTINCT_ERRORS + extra
    assert s.status_dict[OTHER_ERRORS] == extra
    assert sum(s.status_dict.values()) == MAX_DISTINCT_ERRORS + extra
    assert len(s.status_dict) == MAX_DISTINCT_ERRORS + 1


def test_merge_folds_distinct_errors_across_shards():
    shards = []
    for shard_id in range(3):
        s = ShardStats(shard_id)
        for i in range(600):
            s.record("failed_to_resize", f"shard {shard_id} error {i}", 0)
        shards.append(s)
    total = merge(shards)
    errors = total["error_counts"]
    assert sum(errors.values()) == 1800 == total["failed_to_resize"]
    assert errors[OTHER_ERRORS] == 1800 - MAX_DISTINCT_ERRORS
    assert len(errors) == MAX_DISTINCT_ERRORS + 1
    assert next(iter(errors)) == OTHER_ERRORS  # the biggest bucket comes first


def test_success_is_never_folded_into_other_errors():
    s = ShardStats(0)
    for i in range(MAX_DISTINCT_ERRORS):
        s.record("failed_to_download", f"error {i}", 0)
    s.record("success", None, 10)
    assert s.status_dict["success"] == 1
    total = merge([s])
    assert total["status_counts"]["success"] == 1
    # error_counts holds errors only: they add up to the failures
    assert sum(total["error_counts"].values()) == total["failed_to_download"] == MAX_DISTINCT_ERRORS


def test_success_does_not_use_an_error_slot():
    s = ShardStats(0)
    s.record("success", None, 10)
    for i in range(MAX_DISTINCT_ERRORS):
        s.record("failed_to_download", f"error {i}", 0)
    assert OTHER_ERRORS not in s.status_dict
    assert s.status_dict[f"error {MAX_DISTINCT_ERRORS - 1}"] == 1


def test_dataset_statistics_are_counted_per_shard_and_merged():
    first, second = ShardStats(0), ShardStats(1)
    for shape, label, split in [("2x2x3", "cat", "train"), ("2x2x3", "dog", "train"), ("4x2x3", None, "val")]:
        first.record_valid(shape, label, split, labelled=True)
    second.record_valid("2x2x3", "cat", "", labelled=True)
    second.record_valid(None)
    restored = ShardStats.from_json(0, json.loads(json.dumps(first.to_json())))
    assert (restored.shapes, restored.classes, restored.missing_labels) == (first.shapes, first.classes, 1)
    totals = merge([restored, second])
    assert totals["shape_distribution"] == {"2x2x3": 3, "4x2x3": 1, "unknown": 1}
    assert totals["class_counts"] == {"cat": 2, "dog": 1}
    assert totals["split_counts"] == {"train": 2, "val": 1}
    assert totals["missing_labels"] == 1


def test_forget_takes_back_a_failed_row_so_a_retry_counts_it_again():
    s = sample_shard()
    s.forget("failed_to_download", "timeout")
    s.record("success", None, 700)
    s.record_valid("10x10x3")
    assert (s.count, s.successes, s.failed_to_download, s.failed_to_resize) == (7, 4, 2, 1)
    assert "timeout" not in s.status_dict and s.status_dict["HTTP error 404"] == 2
    s.forget("failed_to_resize", "image decoding error")
    assert (s.count, s.failed_to_resize) == (6, 0) and "image decoding error" not in s.status_dict


def test_forget_of_a_folded_message_takes_it_from_the_other_errors_bucket():
    s = ShardStats(0)
    s.status_dict[OTHER_ERRORS] = 2
    s.count, s.failed_to_download = 2, 2
    s.forget("failed_to_download", "a message that was folded")
    assert s.status_dict[OTHER_ERRORS] == 1 and s.count == 1


def test_forget_refuses_a_success():
    try:
        sample_shard().forget("success", None)
    except ValueError:
        return
    raise AssertionError("a success was taken back")


def test_politeness_counts_round_trip_and_merge():
    a, b = ShardStats(0), ShardStats(1)
    a.record_politeness(True, "a.example")
    a.record_politeness(False, None)
    b.record_politeness(True, "a.example")
    b.record_politeness(True, "b.example")
    again = ShardStats.from_json(0, json.loads(json.dumps(a.to_json())))
    assert (again.requests_delayed, dict(again.throttled_hosts)) == (1, {"a.example": 1})
    totals = merge([again, b])
    assert totals["requests_delayed"] == 3
    assert totals["throttled_hosts"] == {"a.example": 2, "b.example": 1}


def test_hosts_that_did_not_answer_round_trip_and_merge():
    a, b = ShardStats(0), ShardStats(1)
    a.record_politeness(False, None, "dead.example")
    a.record_politeness(False, None, "dead.example")
    b.record_politeness(False, None, "dead.example")
    b.record_politeness(False, None, "gone.example")
    b.record_politeness(True, None, None)
    again = ShardStats.from_json(0, json.loads(json.dumps(a.to_json())))
    assert dict(again.unanswered_hosts) == {"dead.example": 2}
    assert merge([again, b])["unanswered_hosts"] == {"dead.example": 3, "gone.example": 1}
    assert dict(ShardStats.from_json(2, {"count": 1}).unanswered_hosts) == {}  # stats written before this field
