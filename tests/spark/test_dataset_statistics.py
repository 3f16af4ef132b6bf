"""label_col, split_col and metadata: kept per sample, and counted in _summary.json for every output format."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from spark_img2ds import download
from tests.helpers.e2e import read_tars, write_csv

NAMES = ["china.jpg", "camera.png", "alpha.png", "deep.png", "pic.webp", "coffee.jpg"]


def rows(server) -> list[dict]:
    out = []
    for i, name in enumerate(NAMES):
        label = "" if i == 2 else name.split(".")[1]  # one success without a label
        out.append({"url": f"{server.url}/img/{name}", "label": label, "split": "val" if i % 3 == 0 else "train"})
    out.append({"url": f"{server.url}/status/404", "label": "jpg", "split": "train"})
    return out


@pytest.mark.parametrize(("output_format", "shape"), [("webdataset", "32x32x3"), ("npz", "32x32")])
def test_statistics_match_counts_made_here(spark, server, tmp_path, output_format, shape):
    data = rows(server)
    urls = write_csv(tmp_path / "urls.csv", data, ["url", "label", "split"])
    out = tmp_path / "out"
    download(
        str(urls),
        spark=spark,
        input_format="csv",
        output_folder=str(out),
        output_format=output_format,
        image_size=32,
        channel_mode="L",
        number_sample_per_shard=4,
        thread_count=8,
        timeout=5,
        allow_private_networks=True,
        label_col="label",
        split_col="split",
        metadata={"source": "test-suite", "label": "overridden?"},
    )
    summary = json.loads((out / "_summary.json").read_text())
    ok = [r for r in data if "/img/" in r["url"]]
    assert (summary["valid"], summary["invalid"], summary["total"]) == (6, 1, 7)
    assert summary["class_counts"] == dict(Counter(r["label"] for r in ok if r["label"]))
    assert summary["missing_labels"] == 1
    assert summary["split_counts"] == dict(Counter(r["split"] for r in ok))
    assert summary["shape_distribution"] == {shape: 6}
    metadata = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert all(r["source"] == "test-suite" for r in metadata)  # the metadata option on every row
    by_url = {r["url"]: r for r in metadata}
    assert all(by_url[r["url"]]["label"] == (r["label"] or None) for r in data)  # a row's own column wins
    if output_format == "webdataset":
        samples = [json.loads(files["json"]) for files in read_tars(str(out)).values()]
        assert {s["source"] for s in samples} == {"test-suite"}
