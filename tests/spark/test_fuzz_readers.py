"""Property-based test of the input readers: any text in any field comes back as written, in order."""

from __future__ import annotations

import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import CAPTION, INDEX_COL, SHARD_COL, URL
from spark_img2ds.driver import reader, sharding

# Text a URL list may hold: commas, quotes, tabs, newlines, non-ASCII; no NUL (csv cannot hold it).
field = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=40)
row = st.tuples(field.filter(lambda t: t.strip() != ""), field)


def write(path, fmt: str, rows: list[tuple[str, str]]) -> None:
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["url", "caption"])
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps({"url": u, "caption": c}) + "\n" for u, c in rows), encoding="utf-8")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_come_back_as_written_and_in_order(spark, tmp_path_factory, fmt):
    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(row, min_size=1, max_size=12))
    def check(rows):
        path = tmp_path_factory.mktemp("fuzz") / f"urls.{fmt}"
        write(path, fmt, rows)
        cfg = Config(url_list=str(path), input_format=fmt, caption_col="caption", number_sample_per_shard=5)
        with sharding.pinned_split_conf(spark):
            keyed = sharding.assign_shards(reader.read_input(spark, cfg), 5)
            got = keyed.df.orderBy(SHARD_COL, INDEX_COL).select(URL, CAPTION).collect()
        assert keyed.total_rows == len(rows)
        # Spark's CSV reader reads an empty quoted field as null; every other value is kept exactly.
        assert [(r[URL], r[CAPTION] or "") for r in got] == [(u, c) for u, c in rows]

    check()
