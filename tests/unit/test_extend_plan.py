"""Where an extend run's shards start (pure)."""

from __future__ import annotations

from spark_img2ds.driver.extend import plan_extend


def test_a_new_input_starts_after_every_existing_and_planned_shard():
    first, entries = plan_extend([], {0, 1, 2}, "a.csv", 10, 2)
    assert first == 3 and entries == [{"url_list": "a.csv", "rows": 10, "first_shard": 3, "shards": 2}]
    second, entries = plan_extend(entries, {0, 1, 2, 3}, "b.csv", 7, 4)  # shard 4 planned, not written yet
    assert second == 5 and len(entries) == 2


def test_the_same_input_resumes_at_its_first_shard():
    entries = [{"url_list": "a.csv", "rows": 10, "first_shard": 3, "shards": 2}]
    assert plan_extend(entries, {0, 1, 2, 3}, "a.csv", 10, 2) == (3, entries)
    assert plan_extend(entries, {0, 1, 2, 3}, "a.csv", 11, 2)[0] == 5  # other rows: another input


def test_dataframes_are_never_matched_and_an_empty_folder_starts_at_zero():
    first, entries = plan_extend([], set(), None, 4, 1)
    assert first == 0 and entries[0]["url_list"] == "<DataFrame>"
    assert plan_extend(entries, {0}, None, 4, 1)[0] == 1
