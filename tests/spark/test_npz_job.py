"""output_format=npz through download(): arrays, a manifest that agrees with the shard parquet, S3, readers."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from spark_img2ds import ConversionOptions, convert, download, load_npz
from spark_img2ds.arrays import arrays_dataframe, iter_npz_dataset
from tests.helpers.e2e import write_csv

NAMES = ["china.jpg", "camera.png", "alpha.png", "deep.png", "exif_rotated.jpg", "pic.webp"]
OPTIONS = dict(
    output_format="npz",
    image_size=32,
    resize_mode="border",
    channel_mode="RGB",
    normalize_mode="0..1",
    dtype="float32",
    number_sample_per_shard=5,
    thread_count=8,
    timeout=5,
    allow_private_networks=True,
)


def url_rows(server) -> list[dict]:
    rows = [{"url": f"{server.url}/img/{n}", "caption": f"a {n}", "label": n.split(".")[1]} for n in NAMES]
    rows += [
        {"url": f"{server.url}/status/404", "caption": "missing", "label": "jpg"},
        {"url": f"{server.url}/notimage", "caption": "html", "label": "png"},
    ]
    return rows


def run(spark, server, out, tmp_path, **extra):
    urls = write_csv(tmp_path / "urls.csv", url_rows(server), ["url", "caption", "label"])
    return download(
        str(urls),
        spark=spark,
        input_format="csv",
        caption_col="caption",
        save_additional_columns=["label"],
        output_folder=out,
        **{**OPTIONS, **extra},
    )


def test_npz_shards_hold_arrays_and_a_manifest_that_matches_the_parquet(spark, server, image_dir, tmp_path):
    out = tmp_path / "out"
    summary = run(spark, server, str(out), tmp_path)
    assert (summary.count, summary.successes) == (8, 6)
    assert sorted(p.name for p in out.glob("*.npz")) == ["00000.npz", "00001.npz"]
    options = ConversionOptions(channel_mode="RGB", normalize_mode="0..1", dtype="float32", image_size=32,
                                resize_mode="border")  # fmt: skip
    seen = 0
    for npz in sorted(out.glob("*.npz")):
        with np.load(npz, allow_pickle=False) as data:  # no pickle needed for anything, manifest included
            manifest = json.loads(str(data["__manifest_json__"]))
            parquet = pq.read_table(npz.with_suffix(".parquet")).to_pylist()
            assert [r["key"] for r in manifest["rows"]] == [r["key"] for r in parquet]
            assert [(r["status"], r["error"]) for r in manifest["rows"]] == [
                (r["status"], r["error_message"]) for r in parquet
            ]
            assert manifest["ok_count"] == sum(r["status"] == "success" for r in parquet)
            assert manifest["job_id"] == summary.job_id and manifest["options"]["dtype"] == "float32"
            for row, meta in zip(manifest["rows"], parquet, strict=True):
                assert row["provenance"]["url"] == meta["url"] and row["provenance"]["job_id"] == summary.job_id
                assert row["metadata"]["caption"] == meta["caption"] and row["metadata"]["label"] == meta["label"]
                if row["status"] != "success":
                    assert row["key"] not in data.files
                    continue
                name = meta["url"].rsplit("/", 1)[1]
                source = (image_dir / name).read_bytes()
                assert row["provenance"]["sha256"] == hashlib.sha256(source).hexdigest()
                array = data[row["key"]]
                np.testing.assert_array_equal(array, convert(source, options))
                assert row["shape"] == [32, 32, 3] and row["dtype"] == "float32"
                assert (meta["width"], meta["height"]) == (32, 32)
                seen += 1
    assert seen == 6
    assert json.loads((out / "00000_stats.json").read_text())["count"] == 5


def test_npz_datasets_read_back_as_a_stream_and_as_a_dataframe(spark, server, tmp_path):
    out = tmp_path / "out"
    run(spark, server, str(out), tmp_path, npz_compressed=True, channel_mode="L", dtype="uint8", normalize_mode="none")
    streamed = list(iter_npz_dataset(str(out)))
    assert len(streamed) == 6
    assert all(a.shape == (32, 32) and a.dtype == np.uint8 for _, a, _ in streamed)
    assert {m["label"] for _, _, m in streamed} == {"jpg", "png", "webp"}
    frame = arrays_dataframe(spark, str(out))
    rows = {r["key"]: r for r in frame.select("key", "array", "shape", "dtype", "caption").collect()}
    assert set(rows) == {k for k, _, _ in streamed}
    key, array, _ = streamed[0]
    np.testing.assert_array_equal(np.load(io.BytesIO(rows[key]["array"])), array)
    assert rows[key]["shape"] == [32, 32] and rows[key]["dtype"] == "uint8"


@pytest.mark.slow
def test_npz_to_s3(spark, server, bucket, s3, tmp_path):
    out = f"{bucket}/npz"
    summary = run(spark, server, out, tmp_path, storage_options=s3["storage_options"])
    assert summary.successes == 6
    arrays, manifest = load_npz(f"{out}/00000.npz", storage_options=s3["storage_options"])
    assert len(arrays) == manifest["ok_count"] and manifest["rows"][0]["provenance"]["job_id"] == summary.job_id
