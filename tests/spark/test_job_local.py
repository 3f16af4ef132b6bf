"""End-to-end runs in a real local Spark session against the real sample server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from spark_img2ds import download
from spark_img2ds.errors import InputError
from spark_img2ds.tuning.affinity import lock_dir
from tests.helpers.e2e import FAULT_CASES, fault_rows, read_json, read_metadata, read_tars, write_csv

COMMON = dict(
    output_format="webdataset",
    image_size=64,
    thread_count=8,
    timeout=2,
    number_sample_per_shard=5,
    allow_private_networks=True,
)


def run_faults(spark, url_list, out):
    """The fault list as a CSV with captions and an extra column, to a local folder."""
    return download(
        str(url_list),
        spark=spark,
        input_format="csv",
        caption_col="caption",
        save_additional_columns=["rid"],
        output_folder=str(out),
        **COMMON,
    )


@pytest.fixture(scope="module")
def fault_run(spark, server, tmp_path_factory):
    """One run over every fault route; the tests below inspect its output."""
    tmp = tmp_path_factory.mktemp("faults")
    url_list = write_csv(tmp / "urls.csv", fault_rows(server.url), ["url", "caption", "rid"])
    out = tmp / "out"
    summary = run_faults(spark, url_list, out)
    return summary, out, url_list


def test_every_row_ends_as_exactly_one_row_with_its_status(fault_run):
    summary, out, _ = fault_run
    rows = read_metadata(str(out))
    assert sorted(int(r["rid"]) for r in rows) == list(range(len(FAULT_CASES)))
    for r in rows:
        _, status, message = FAULT_CASES[int(r["rid"])]
        assert (r["status"], r["error_message"]) == (status, message), r["url"]
    expected_ok = sum(1 for c in FAULT_CASES if c[1] == "success")
    assert summary.complete
    assert summary.count == len(FAULT_CASES)
    assert summary.successes == expected_ok
    assert summary.failed_to_download == sum(1 for c in FAULT_CASES if c[1] == "failed_to_download")
    assert summary.error_counts["HTTP 404 Not Found"] == 1


def test_metadata_columns_follow_img2dataset_order(fault_run):
    _, out, _ = fault_run
    import pyarrow.parquet as pq

    schema = pq.read_schema(out / "00000.parquet")
    assert schema.names == [
        "rid",
        "caption",
        "url",
        "key",
        "status",
        "error_message",
        "width",
        "height",
        "original_width",
        "original_height",
        "exif",
        "sha256",
    ]


def test_keys_follow_input_order(fault_run):
    _, out, _ = fault_run
    rows = read_metadata(str(out))
    # 5 samples per shard -> d = 1 digit, plus 5 shard digits
    assert {r["key"] for r in rows} == {f"{(i // 5) * 10 + i % 5:06d}" for i in range(len(FAULT_CASES))}
    for r in rows:
        i = int(r["rid"])
        assert r["key"] == f"{i // 5:05d}{i % 5}"


def test_tar_holds_successes_with_image_json_and_caption(fault_run, image_dir):
    _, out, _ = fault_run
    samples = read_tars(str(out))
    rows = {r["key"]: r for r in read_metadata(str(out))}
    assert set(samples) == {k for k, r in rows.items() if r["status"] == "success"}
    for key, files in samples.items():
        assert set(files) == {"jpg", "json", "txt"}
        meta = json.loads(files["json"])
        assert meta["key"] == key and meta["status"] == "success"
        assert files["txt"].decode() == rows[key]["caption"]
        img = cv2.imdecode(np.frombuffer(files["jpg"], np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (64, 64, 3)
        assert (meta["width"], meta["height"]) == (64, 64)
    china = next(r for r in rows.values() if r["url"].endswith("/img/china.jpg"))
    import hashlib

    assert china["sha256"] == hashlib.sha256((image_dir / "china.jpg").read_bytes()).hexdigest()
    assert (china["original_width"], china["original_height"]) == (360, 240)
    rotated = next(r for r in rows.values() if r["url"].endswith("exif_rotated.jpg"))
    assert json.loads(rotated["exif"])["Image Make"] == "spark_img2ds"
    assert (rotated["original_width"], rotated["original_height"]) == (100, 200)
    assert china["exif"] == "{}"


def test_tar_reads_back_with_webdataset(fault_run):
    import webdataset as wds

    _, out, _ = fault_run
    shards = sorted(str(p) for p in out.glob("*.tar"))
    seen = []
    for sample in wds.WebDataset(shards, shardshuffle=False):
        assert sample["jpg"][:3] == b"\xff\xd8\xff"
        assert json.loads(sample["json"])["key"] == sample["__key__"]
        seen.append(sample["__key__"])
    assert seen == sorted(seen)
    assert len(seen) == sum(1 for c in FAULT_CASES if c[1] == "success")


def test_parquet_reads_back_with_spark(fault_run, spark):
    _, out, _ = fault_run
    df = spark.read.parquet(str(out / "*.parquet"))
    assert df.count() == len(FAULT_CASES)
    assert df.where("status = 'success'").count() == sum(1 for c in FAULT_CASES if c[1] == "success")


def test_stats_summary_and_success_marker(fault_run):
    summary, out, _ = fault_run
    assert (out / "_SUCCESS").exists()
    stats = read_json(str(out), "00000_stats.json")
    assert set(stats) >= {"count", "successes", "failed_to_download", "failed_to_resize", "duration", "status_dict"}
    assert stats["count"] == 5
    total = read_json(str(out), "_summary.json")
    assert total["complete"] is True
    assert total["count"] == len(FAULT_CASES)
    assert total["shards"]["total"] == 4
    assert [s["state"] for s in total["per_shard"]] == ["done"] * 4
    assert total["config"]["output_format"] == "webdataset"
    assert total["status_counts"]["success"] == summary.successes
    assert not list(out.glob("*img2ds-tmp*"))


def test_incremental_rerun_downloads_nothing(fault_run, spark, server):
    _, out, url_list = fault_run
    before = server.hits
    summary = run_faults(spark, url_list, out)
    assert server.hits == before
    assert summary.shards_skipped == 4 and summary.shards_written == 0
    assert summary.count == len(FAULT_CASES) and summary.complete


def test_same_input_gives_the_same_bytes(fault_run, spark, tmp_path):
    _, out, url_list = fault_run
    again = tmp_path / "again"
    run_faults(spark, url_list, again)
    for name in ("00000.tar", "00001.tar", "00000.parquet"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_overwrite_mode_clears_the_folder(spark, server, tmp_path):
    url_list = tmp_path / "urls.txt"
    url_list.write_text(f"{server.url}/img/china.jpg\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    summary = download(str(url_list), spark=spark, output_folder=str(out), incremental_mode="overwrite", **COMMON)
    assert summary.successes == 1
    assert not (out / "stale.txt").exists()
    assert (out / "00000.tar").exists()


def test_a_shard_that_cannot_be_written_is_retried_then_reported(spark, server, tmp_path):
    """A real write failure (a folder sits where the tar must go) fails that shard only."""
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(f"{server.url}/img/china.jpg?{i}\n" for i in range(10)))
    out = tmp_path / "out"
    (out / "00001.tar" / "blocker").mkdir(parents=True)
    summary = download(str(url_list), spark=spark, output_folder=str(out), max_shard_retry=1, **COMMON)
    assert not summary.complete
    assert summary.shards_failed == [1]
    assert summary.shards_written == 1
    assert (out / "00000_stats.json").exists()
    assert not (out / "00001_stats.json").exists()
    assert not (out / "_SUCCESS").exists()
    total = read_json(str(out), "_summary.json")
    assert total["per_shard"][1]["state"] == "failed"
    assert "IsADirectoryError" in total["per_shard"][1]["error"] or "directory" in total["per_shard"][1]["error"]
    assert not [p for p in out.rglob("*") if "img2ds-tmp" in p.name]


def test_missing_input_is_a_clear_error(spark, tmp_path):
    with pytest.raises(InputError, match="url_list not found"):
        download(str(tmp_path / "nope.txt"), spark=spark, output_folder=str(tmp_path / "o"), **COMMON)


def test_missing_column_names_the_available_ones(spark, tmp_path):
    path = write_csv(tmp_path / "u.csv", [{"link": "http://x/1.jpg", "text": "a"}], ["link", "text"])
    with pytest.raises(InputError, match=r"'url' not found .*available columns: link, text"):
        download(str(path), spark=spark, input_format="csv", output_folder=str(tmp_path / "o"), **COMMON)


def test_txt_input_cannot_have_captions(spark, tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("http://x/1.jpg\n")
    with pytest.raises(InputError, match="txt input has only a url column"):
        download(str(path), spark=spark, caption_col="caption", output_folder=str(tmp_path / "o"), **COMMON)


def test_files_and_parquet_output_formats(spark, server, tmp_path):
    url_list = tmp_path / "urls.txt"
    url_list.write_text(f"{server.url}/img/china.jpg\n{server.url}/status/404\n")
    files_out = tmp_path / "files"
    download(str(url_list), spark=spark, output_folder=str(files_out), **{**COMMON, "output_format": "files"})
    assert sorted(os.listdir(files_out / "00000")) == ["000000.jpg", "000000.json"]
    pq_out = tmp_path / "pq"
    download(str(url_list), spark=spark, output_folder=str(pq_out), **{**COMMON, "output_format": "parquet"})
    rows = read_metadata(str(pq_out))
    assert rows[0]["jpg"][:3] == b"\xff\xd8\xff" and rows[1]["jpg"] is None
    dummy_out = tmp_path / "dummy"
    summary = download(str(url_list), spark=spark, output_folder=str(dummy_out), **{**COMMON, "output_format": "dummy"})
    assert summary.successes == 1
    assert sorted(p.name for p in Path(dummy_out).iterdir()) == [
        "00000_stats.json", "_SUCCESS", "_job.json", "_report.html", "_summary.json"]  # fmt: skip


def test_tasks_of_several_shards_write_the_same_bytes_as_single_shard_tasks(spark, server, tmp_path):
    """Shards pipelined in one task are written exactly as a task per shard writes them."""
    url_list = tmp_path / "urls.txt"
    names = ["china.jpg", "flower.jpg", "coffee.jpg", "rocket.jpg", "grace_hopper.jpg", "alpha.png", "pic.webp"]
    url_list.write_text("".join(f"{server.url}/img/{names[i % len(names)]}?i={i}\n" for i in range(23)))
    files = {}
    for per_task in (1, 3):
        out = tmp_path / f"per_task_{per_task}"
        summary = download(str(url_list), spark=spark, output_folder=str(out), shards_per_task=per_task, **COMMON)
        assert summary.complete and summary.shards_total == 5 and summary.successes == 23
        files[per_task] = {p.name: p.read_bytes() for p in out.glob("0000*") if not p.name.endswith("_stats.json")}
    assert sorted(files[1]) == sorted(files[3]) and len(files[1]) == 10
    assert files[1] == files[3]


def test_download_tasks_label_the_cpus_they_claim_with_the_run(spark, server, tmp_path):
    """The label lets a run's last task borrow the CPUs its finished siblings left idle (affinity.SpareCpus)."""
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(f"{server.url}/img/china.jpg?i={i}\n" for i in range(4)))
    summary = download(str(url_list), spark=spark, output_folder=str(tmp_path / "out"), **COMMON)
    assert summary.complete and summary.successes == 4
    labels = {p.read_text() for p in Path(lock_dir()).glob("cpu*.lock")}
    assert summary.job_id in labels
