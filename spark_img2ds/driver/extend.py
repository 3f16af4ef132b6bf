"""incremental_mode=extend: where a new input's shards start in a dataset that has some (pure)."""

from __future__ import annotations

from typing import Any


def plan_extend(
    entries: list[dict[str, Any]], done: set[int], source: str | None, rows: int, shards: int
) -> tuple[int, list[dict[str, Any]]]:
    """(first shard id for the input, the entries to record).

    An input seen before (same url_list and row count; DataFrames are never matched) keeps its
    first shard, so a rerun resumes; a new one starts after every shard that exists or was planned.
    """
    for entry in entries:
        if source is not None and entry.get("url_list") == source and entry.get("rows") == rows:
            return int(entry["first_shard"]), entries
    planned = [int(e["first_shard"]) + int(e["shards"]) - 1 for e in entries]
    first = max([*done, *planned], default=-1) + 1
    entry = {"url_list": source or "<DataFrame>", "rows": rows, "first_shard": first, "shards": shards}
    return first, [*entries, entry]
