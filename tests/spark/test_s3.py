"""Writing to S3 (moto's server over HTTP, s3fs in the executors)."""

from __future__ import annotations

import json

import s3fs

from spark_img2ds import download
from spark_img2ds.cli import main
from tests.helpers.e2e import FAULT_CASES, fault_rows, read_json, read_metadata, read_tars, write_csv

OPTS = dict(
    output_format="webdataset",
    input_format="csv",
    caption_col="caption",
    save_additional_columns=["rid"],
    image_size=64,
    thread_count=8,
    timeout=2,
    number_sample_per_shard=5,
    allow_private_networks=True,
)


def test_s3_run_matches_local_run_key_for_key(spark, server, s3, bucket, tmp_path):
    url_list = write_csv(tmp_path / "urls.csv", fault_rows(server.url), ["url", "caption", "rid"])
    local = tmp_path / "local"
    remote = f"{bucket}/dataset"
    so = s3["storage_options"]
    download(str(url_list), spark=spark, output_folder=str(local), **OPTS)
    summary = download(str(url_list), spark=spark, output_folder=remote, storage_options=so, **OPTS)
    assert summary.complete and summary.count == len(FAULT_CASES)

    local_rows = {r["key"]: (r["url"], r["status"], r["error_message"]) for r in read_metadata(str(local))}
    remote_rows = {r["key"]: (r["url"], r["status"], r["error_message"]) for r in read_metadata(remote, so)}
    assert remote_rows == local_rows
    assert read_tars(remote, so) == read_tars(str(local))

    fs = s3fs.S3FileSystem(**so)
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(remote))
    assert names[-4:] == ["_SUCCESS", "_job.json", "_report.html", "_summary.json"]
    assert names.count("00000.tar") == 1 and not [n for n in names if "tmp" in n]
    summary_json = read_json(remote, "_summary.json", so)
    assert summary_json["config"]["storage_options"]["secret"] == "***"
    assert summary_json["config"]["storage_options"]["client_kwargs"]["endpoint_url"] == s3["endpoint"]

    before = server.hits
    again = download(str(url_list), spark=spark, output_folder=remote, storage_options=so, **OPTS)
    assert server.hits == before
    assert again.shards_skipped == 4 and again.shards_written == 0 and again.complete


def test_s3_overwrite_removes_old_objects(spark, server, s3, bucket, tmp_path):
    so = s3["storage_options"]
    fs = s3fs.S3FileSystem(**so)
    remote = f"{bucket}/ds"
    fs.pipe(f"{remote}/stale.bin", b"old")
    url_list = tmp_path / "u.txt"
    url_list.write_text(f"{server.url}/img/china.jpg\n")
    summary = download(
        str(url_list),
        spark=spark,
        output_folder=remote,
        storage_options=so,
        incremental_mode="overwrite",
        output_format="webdataset",
        allow_private_networks=True,
    )
    assert summary.successes == 1
    fs.invalidate_cache()
    assert not fs.exists(f"{remote}/stale.bin")
    assert fs.exists(f"{remote}/00000.tar")


def test_cli_reaches_s3_through_the_standard_aws_variables(server, s3, bucket, tmp_path):
    """No storage_options: endpoint and credentials come from the environment, in every executor."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    urls = tmp_path / "u.txt"
    urls.write_text(f"{server.url}/img/china.jpg\n{server.url}/status/404\n")
    env = dict(os.environ)
    env.update(
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=s3["endpoint"],
        AWS_DEFAULT_REGION="us-east-1",
    )
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-img2ds"), str(urls), "--output_folder", f"{bucket}/env"]
        + ["--output_format", "webdataset", "--allow_private_networks"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_metadata(f"{bucket}/env", s3["storage_options"])
    assert [r["status"] for r in rows] == ["success", "failed_to_download"]


def test_s3_retry_failed_rewrites_a_shard_in_the_bucket(spark, server, s3, bucket, tmp_path, capsys):
    so = s3["storage_options"]
    remote = f"{bucket}/retry"
    rows = [{"url": f"{server.url}/flaky/s3retry{i}/china.jpg", "caption": "c", "rid": str(i)} for i in range(2)]
    rows.append({"url": f"{server.url}/img/coffee.jpg", "caption": "c", "rid": "2"})
    url_list = write_csv(tmp_path / "urls.csv", rows, ["url", "caption", "rid"])
    first = download(str(url_list), spark=spark, output_folder=remote, storage_options=so, **OPTS)
    kept = read_tars(remote, so)
    assert (first.successes, sorted(kept)) == (1, ["000002"])

    summary = download(retry_failed_from=remote, storage_options=so, spark=spark)
    assert (summary.recovered, summary.successes) == (2, 3)
    samples = read_tars(remote, so)
    assert sorted(samples) == ["000000", "000001", "000002"] and samples["000002"] == kept["000002"]
    assert [r["status"] for r in read_metadata(remote, so)] == ["success"] * 3
    fs = s3fs.S3FileSystem(**so)
    assert not [p for p in fs.ls(remote) if "tmp" in p]
    assert main(["status", remote, "--json", "--storage_options", json.dumps(so)]) == 0  # status reads S3 too
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["samples_done"], shown["successes"]) == ("finished", 3, 3)
