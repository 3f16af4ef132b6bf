"""incremental_mode=extend: a new input's shards after the existing ones, nothing old touched, one summary."""

from __future__ import annotations

import json

from spark_img2ds import download
from tests.helpers.e2e import read_metadata, write_csv

OPTS = dict(input_format="csv", output_format="webdataset", image_size=32, thread_count=4, timeout=5,
            number_sample_per_shard=2, allow_private_networks=True)  # fmt: skip


def test_extend_appends_shards_keeps_the_old_ones_and_resumes(spark, server, tmp_path):
    out = tmp_path / "out"
    first = write_csv(tmp_path / "a.csv", [{"url": f"{server.url}/img/china.jpg?a={i}"} for i in range(5)], ["url"])
    download(str(first), spark=spark, output_folder=str(out), **OPTS)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".tar", ".parquet")}
    assert sorted(before) == [f"0000{i}.{ext}" for i in range(3) for ext in ("parquet", "tar")]

    second = write_csv(tmp_path / "b.csv", [{"url": f"{server.url}/img/camera.png?b={i}"} for i in range(3)], ["url"])
    summary = download(str(second), spark=spark, output_folder=str(out), incremental_mode="extend", **OPTS)
    assert (summary.shards_total, summary.shards_written, summary.count) == (5, 2, 8)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before  # untouched
    rows = read_metadata(str(out))
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 8
    assert sorted(r["key"] for r in rows if "b=" in r["url"]) == ["000030", "000031", "000040"]
    saved = json.loads((out / "_summary.json").read_text())
    assert saved["count"] == 8 and saved["shards"]["total"] == 5
    assert json.loads((out / "_extends.json").read_text())[0]["first_shard"] == 3

    again = download(str(second), spark=spark, output_folder=str(out), incremental_mode="extend", **OPTS)
    assert (again.shards_written, again.count) == (0, 8)  # the same input: resumed, not appended twice
