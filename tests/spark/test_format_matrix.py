"""Every input format x every output format: the same rows, the same keys, and each format's files readable."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from tfrecord.reader import tfrecord_loader

from spark_img2ds import download, load_npz
from spark_img2ds.config import INPUT_FORMATS
from spark_img2ds.writers import OUTPUT_FORMATS
from tests.helpers.e2e import read_metadata, read_tars
from tests.spark.test_inputs import write_input

NAMES = ["china.jpg", "camera.png", "pic.webp"]


def stored_images(out, fmt: str) -> dict[str, bytes | np.ndarray]:
    """key -> the stored image (bytes, or the array for npz), read with each format's own reader."""
    if fmt == "webdataset":
        return {key: files["jpg"] for key, files in read_tars(str(out)).items()}
    if fmt == "files":
        return {p.stem: p.read_bytes() for p in out.glob("*/*.jpg")}
    if fmt == "parquet":
        return {r["key"]: r["jpg"] for p in out.glob("*.parquet") for r in pq.read_table(p).to_pylist() if r["jpg"]}
    if fmt == "tfrecord":
        images = {}
        for path in sorted(out.glob("*.tfrecord")):
            for record in tfrecord_loader(str(path), None, {"key": "byte", "jpg": "byte", "url": "byte"}):
                images[bytes(record["key"]).decode()] = bytes(record["jpg"])
        return images
    if fmt == "npz":
        return {k: v for p in sorted(out.glob("*.npz")) for k, v in load_npz(str(p))[0].items()}
    return {}


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
@pytest.mark.parametrize("input_format", INPUT_FORMATS)
def test_each_input_format_to_each_output_format(spark, server, tmp_path, input_format, output_format):
    rows = [{"url": f"{server.url}/img/{n}", "caption": f"a {n}", "n": i} for i, n in enumerate(NAMES)]
    rows.append({"url": f"{server.url}/status/404", "caption": "missing", "n": 3})
    url_list = write_input(tmp_path, input_format, rows)
    extra = {} if input_format.startswith("txt") else {"caption_col": "caption"}
    out = tmp_path / "out"
    summary = download(url_list, spark=spark, input_format=input_format, output_folder=str(out),
                       output_format=output_format, image_size=32, thread_count=4, timeout=5,
                       number_sample_per_shard=2, allow_private_networks=True, **extra)  # fmt: skip
    assert (summary.count, summary.successes, summary.complete) == (4, 3, True)
    assert sorted(json.loads((out / "_summary.json").read_text())["status_counts"].items()) == [
        ("failed_to_download", 1), ("failed_to_resize", 0), ("success", 3)]  # fmt: skip
    if output_format == "dummy":
        assert not list(out.glob("*.parquet")) and len(list(out.glob("*_stats.json"))) == 2
        return
    meta = {r["key"]: r for r in read_metadata(str(out))}
    assert sorted(meta) == ["000000", "000001", "000010", "000011"]  # positional keys, every row once
    images = stored_images(out, output_format)
    assert sorted(images) == sorted(k for k, r in meta.items() if r["status"] == "success")
    for image in images.values():
        assert (image.shape if isinstance(image, np.ndarray) else image[:3]) in ((32, 32, 3), b"\xff\xd8\xff")


@pytest.mark.parametrize("output_format", ["tfrecord", "webdataset", "parquet"])
def test_a_shard_written_twice_gives_the_same_bytes(spark, server, tmp_path, output_format):
    rows = [{"url": f"{server.url}/img/{n}", "caption": n, "n": i} for i, n in enumerate(NAMES)]
    url_list = write_input(tmp_path, "csv", rows)
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        download(url_list, spark=spark, input_format="csv", caption_col="caption", output_folder=str(out),
                 output_format=output_format, image_size=32, thread_count=4, timeout=5,
                 allow_private_networks=True)  # fmt: skip
        data_files = [p for p in out.iterdir() if not p.name.startswith("_") and "stats" not in p.name]
        outs.append({p.name: p.read_bytes() for p in data_files})
    assert outs[0] == outs[1] and "00000.parquet" in outs[0]  # timestamps live only in stats and summary
