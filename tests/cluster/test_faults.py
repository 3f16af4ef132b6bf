"""Crashes, kills, stalls and storage faults: nothing partial is ever visible, nothing is lost.

Local mode and real processes: a killed CLI run, S3 behind a fault-injecting proxy, the
shard watchdog and the driver's stall report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import s3fs

from spark_img2ds import download
from spark_img2ds.dataset import storage
from spark_img2ds.worker import watchdog
from tests.helpers.cluster import spark_env
from tests.helpers.e2e import assert_each_row_once, read_metadata, read_tars
from tests.helpers.s3_fault_proxy import S3FaultProxy

BIN = Path(sys.executable).parent
NAMES = ["china.jpg", "flower.jpg", "coffee.jpg", "rocket.jpg", "grace_hopper.jpg"]
MiB = 2**20


def write_urls(path: Path, server, n: int, route: str = "img", names=NAMES) -> list[str]:
    urls = [f"{server.url}/{route}/{names[i % len(names)]}?row={i}&f={path.stem}" for i in range(n)]
    path.write_text("\n".join(urls) + "\n")
    return urls


# --- pure logic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle", "stalled", "expected"),
    [
        (1, False, "ok"),
        (11, False, "stall"),
        (11, True, "ok"),
        (19, True, "ok"),
        (21, True, "exit"),
        (25, False, "stall"),
    ],
)
def test_watchdog_verdict(idle, stalled, expected):
    assert watchdog.verdict(idle, 10, stalled) == expected


def test_watchdog_does_not_hold_time_waiting_for_input_against_the_shard():
    """A task waiting on Spark for its next shard's rows is not a stalled shard."""
    limit = 1.5
    # The shard is always ended well before 2 x limit without a sample, when the watchdog
    # would end this process (pytest's own), whether the test passes or fails.
    with watchdog.ShardWatchdog(limit) as dog:
        try:
            dog.begin("00000")
            with dog.paused():
                time.sleep(1.6 * limit)  # a watched shard would be declared stalled by now
            dog.check()
            deadline = time.monotonic() + 1.6 * limit
            with pytest.raises(watchdog.ShardStalled):  # outside the pause the limit holds again
                while time.monotonic() < deadline:
                    dog.check()
                    time.sleep(0.05)
        finally:
            dog.end()


def test_cleanup_partial_removes_only_temporary_files(tmp_path):
    fs, root = storage.filesystem(str(tmp_path))
    (tmp_path / "00000.tar").write_bytes(b"done")
    (tmp_path / f"00001.tar{storage.TMP_MARK}abc").write_bytes(b"half")
    (tmp_path / "00002").mkdir()
    (tmp_path / "00002" / f"000020001.jpg{storage.TMP_MARK}def").write_bytes(b"half")
    (tmp_path / "_running").mkdir()
    (tmp_path / "_running" / "00001.json").write_text("{}")
    removed = storage.cleanup_partial(fs, root)
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["00000.tar"]


def test_cleanup_partial_aborts_unfinished_uploads_under_the_dataset_only(s3, bucket):
    fs = s3fs.S3FileSystem(**s3["storage_options"], skip_instance_cache=True)
    name = bucket.split("://", 1)[1]
    inside = fs.call_s3("create_multipart_upload", Bucket=name, Key="ds/00003.tar")["UploadId"]
    outside = fs.call_s3("create_multipart_upload", Bucket=name, Key="other/00003.tar")["UploadId"]
    fs2, root = storage.filesystem(f"{bucket}/ds", s3["storage_options"])
    removed = storage.cleanup_partial(fs2, root)
    assert removed == [f"{name}/ds/00003.tar (multipart upload {inside})"]
    left = fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("other/00003.tar", outside)]
    fs.call_s3("abort_multipart_upload", Bucket=name, Key="other/00003.tar", UploadId=outside)


# --- a killed local run ---------------------------------------------------------------------------


def complete_tar_keys(path: Path) -> list[str]:
    with tarfile.open(path) as tar:  # raises on a truncated archive
        return sorted({m.name.split(".", 1)[0] for m in tar.getmembers()})


@pytest.mark.slow
def test_killed_local_run_leaves_no_truncated_tar_and_rerun_completes(server, tmp_path):
    urls = write_urls(tmp_path / "urls.txt", server, n=40, route="delay/0.3")
    out = tmp_path / "ds"
    cmd = [str(BIN / "spark-img2ds"), "--url_list", str(tmp_path / "urls.txt"), "--output_folder", str(out)]
    cmd += ["--output_format", "webdataset", "--image_size", "64", "--thread_count", "2"]
    cmd += ["--number_sample_per_shard", "10", "--processes_count", "2", "--allow_private_networks", "True"]
    log = open(tmp_path / "run1.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=spark_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.monotonic() + 180
        while not list(out.glob(f"*.tar{storage.TMP_MARK}*")):
            assert proc.poll() is None and time.monotonic() < end, (tmp_path / "run1.log").read_text()[-2000:]
            time.sleep(0.05)
        time.sleep(0.5)  # well inside a shard of 10 x 0.3 s downloads on 2 threads
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

    partial = list(out.glob(f"*{storage.TMP_MARK}*"))
    assert partial, "the kill came after the shards were written: the test proves nothing"
    for tar in out.glob("*.tar"):
        meta = pq.read_table(out / tar.name.replace(".tar", ".parquet")).to_pylist()
        assert complete_tar_keys(tar) == sorted(r["key"] for r in meta if r["status"] == "success")
        assert (out / tar.name.replace(".tar", "_stats.json")).exists()
    assert not (out / "_SUCCESS").exists()

    rerun = subprocess.run(cmd, env=spark_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "partial file(s) left by an earlier run" in rerun.stdout + rerun.stderr
    assert_each_row_once(str(out), urls)


# --- the shard watchdog, the stall report and progress ------------------------------------------


def test_watchdog_abandons_a_shard_without_progress_and_the_summary_says_why(spark, server, tmp_path):
    url_list = tmp_path / "urls.txt"
    url_list.write_text(f"{server.url}/img/china.jpg\n{server.url}/delay/4/flower.jpg\n")
    out = tmp_path / "ds"
    summary = download(
        str(url_list),
        spark=spark,
        output_folder=str(out),
        output_format="webdataset",
        image_size=32,
        thread_count=2,
        number_sample_per_shard=1,
        stall_timeout=1,
        max_shard_retry=0,
        allow_private_networks=True,
    )
    assert not summary.complete and summary.shards_failed == [1]
    report = json.loads((out / "_summary.json").read_text())
    shard1 = report["per_shard"][1]
    assert shard1["state"] == "failed"
    assert "no progress for 1s" in shard1["error"]
    assert not list(out.glob("00001*")), "an abandoned shard must leave nothing under its names"
    assert (out / "00000.tar").exists()


def _logged_download(spark, caplog, url_list: Path, out: Path, **options):
    """A small webdataset run with the driver's INFO log captured."""
    with caplog.at_level(logging.INFO, logger="spark_img2ds"):
        return download(
            str(url_list),
            spark=spark,
            output_folder=str(out),
            output_format="webdataset",
            image_size=32,
            allow_private_networks=True,
            **options,
        )


def test_driver_reports_running_shards_when_none_finishes(spark, server, tmp_path, caplog):
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(f"{server.url}/delay/1.2/china.jpg?i={i}\n" for i in range(4)))
    options = dict(thread_count=1, number_sample_per_shard=4, stall_timeout=2, progress_interval=0.5)
    summary = _logged_download(spark, caplog, url_list, tmp_path / "ds", **options)
    assert summary.complete
    stall_lines = [r.getMessage() for r in caplog.records if "no shard finished" in r.getMessage()]
    named = [line for line in stall_lines if re.search(r"shard 00000: \d/4 samples on \S+ \(pid \d+\)", line)]
    assert named, f"the driver never named the running shard: {stall_lines}"
    assert "last heartbeat" in named[0]


def test_progress_is_reported_while_a_task_of_several_shards_runs(spark, server, tmp_path, caplog):
    """Accumulators arrive only when a task ends; the progress line reads heartbeats meanwhile."""
    url_list = tmp_path / "urls.txt"
    fast = [f"{server.url}/img/china.jpg?i={i}" for i in range(4)]  # shard 0 commits early
    slow = [f"{server.url}/delay/0.6/china.jpg?i={i}" for i in range(4, 8)]  # shard 1 takes >= 1.2 s more
    url_list.write_text("".join(u + "\n" for u in fast + slow))
    options = dict(thread_count=2, number_sample_per_shard=4, shards_per_task=2, progress_interval=0.3)
    summary = _logged_download(spark, caplog, url_list, tmp_path / "ds", **options)
    assert summary.complete and summary.successes == 8
    lines = [
        (r.created, m)
        for r in caplog.records
        if (m := re.search(r"progress: (\d+)/2 shards, (\d+)/8 samples", r.getMessage()))
    ]
    seen = [tuple(int(x) for x in m.groups()) for _, m in lines]
    # When it fails, say when each progress line and each shard happened, from the first line.
    t0 = lines[0][0] if lines else 0.0
    stats = {p.name: json.loads(p.read_text()) for p in sorted((tmp_path / "ds").glob("*_stats.json"))}
    timeline = [(round(t - t0, 2), m.group(0)) for t, m in lines] + [
        (name, round(st["start_time"] - t0, 2), round(st["end_time"] - t0, 2)) for name, st in stats.items()
    ]
    assert any(0 < samples < 8 for _, samples in seen), f"no progress while the task ran: {timeline}"
    assert any(shards == 1 and 4 <= samples < 8 for shards, samples in seen), (
        f"shard 0's commit went unseen: {timeline}"
    )
    assert not (tmp_path / "ds" / "_running").exists()


# --- S3 misbehaving ----------------------------------------------------------------------------------


class VisibilityWatch:
    """Lists the bucket straight from moto while a job runs, recording every size each key had."""

    def __init__(self, fs: s3fs.S3FileSystem, root: str) -> None:
        self.fs, self.root = fs, root
        self.sizes: dict[str, set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.fs.invalidate_cache()
            try:
                for path, info in self.fs.find(self.root, detail=True).items():
                    self.sizes.setdefault(path, set()).add(info["size"])
            except FileNotFoundError:
                pass
            time.sleep(0.05)

    def __enter__(self) -> VisibilityWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.slow
def test_s3_faults_give_a_correct_dataset_and_never_a_partial_object(spark, server, s3, bucket, tmp_path, caplog):
    urls = write_urls(tmp_path / "urls.txt", server, n=12, names=["noise.png"])
    name = bucket.split("://", 1)[1]
    direct = s3fs.S3FileSystem(**s3["storage_options"], skip_instance_cache=True)
    # An upload left by a killed attempt of an earlier run: the run must abort it.
    stale = direct.call_s3("create_multipart_upload", Bucket=name, Key="ds/00009.tar")["UploadId"]
    opts = dict(
        output_format="webdataset",
        resize_mode="no",
        disable_all_reencoding=True,
        number_sample_per_shard=3,  # ~9 MiB tars: multipart uploads of 5 MiB parts
        thread_count=3,
        allow_private_networks=True,
    )
    local = tmp_path / "local"
    download(str(tmp_path / "urls.txt"), spark=spark, output_folder=str(local), **opts)

    with S3FaultProxy(s3["endpoint"]) as proxy:
        so = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": proxy.endpoint},
            "config_kwargs": {"read_timeout": 2, "connect_timeout": 2, "retries": {"max_attempts": 3}},
            "default_block_size": 5 * MiB,
        }
        faults = [
            proxy.add_fault(kind="put_object", action="error", times=2),
            proxy.add_fault(kind="upload_part", action="error", status=503, code="SlowDown", times=1),
            proxy.add_fault(kind="create_multipart", action="reset", times=1),
            proxy.add_fault(kind="complete_multipart", action="drop_after_upstream", times=1),
            # A data object, not a heartbeat: the stalled original is forwarded 4 s later, when the
            # run may have ended and removed _running/, where a heartbeat would then reappear.
            proxy.add_fault(kind="put_object", key=r"\.parquet$", action="stall", delay=4, times=1),
            # Shard 2's parts fail on every botocore attempt: its task fails, the driver retries it.
            proxy.add_fault(kind="upload_part", key="00002.tar", action="error", times=4),
        ]
        with VisibilityWatch(direct, f"{name}/ds") as watch, caplog.at_level(logging.INFO, logger="spark_img2ds"):
            summary = download(
                str(tmp_path / "urls.txt"), spark=spark, output_folder=f"{bucket}/ds", storage_options=so, **opts
            )
        assert [f.injected for f in faults] == [f.times for f in faults], "a fault never fired"
        proxy.wait_idle(15)

    assert summary.complete and summary.successes == 12
    retried = [r.getMessage() for r in caplog.records if "failed (attempt 1 of" in r.getMessage()]
    assert len(retried) == 1 and retried[0].startswith("shard 00002 failed (attempt 1 of 2), will retry: ")
    assert any("partial file(s) left by an earlier run" in r.getMessage() for r in caplog.records)
    remote = f"{bucket}/ds"
    ds = {"storage_options": s3["storage_options"]}
    assert_each_row_once(remote, urls, **ds)
    assert read_tars(remote, **ds) == read_tars(str(local))
    strip = ("error_message", "status", "key", "url", "sha256")
    assert [tuple(r[k] for k in strip) for r in read_metadata(remote, **ds)] == [
        tuple(r[k] for k in strip) for r in read_metadata(str(local))
    ]
    direct.invalidate_cache()
    final = {p: i["size"] for p, i in direct.find(f"{name}/ds", detail=True).items()}
    for path, sizes in watch.sizes.items():
        if path.endswith((".tar", ".parquet")):
            assert sizes == {final[path]}, f"{path} was visible with sizes {sizes}, finally {final.get(path)}"
    assert any(p.endswith(".tar") for p in watch.sizes), "the watcher never saw a shard: it proves nothing"
    uploads = direct.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", [])
    assert uploads == [], f"dangling multipart uploads: {uploads}"
    assert stale not in str(uploads)


@pytest.mark.slow
def test_watchdog_ends_a_worker_stuck_in_storage_io_and_the_shard_is_redone(
    spark, server, s3, bucket, tmp_path, caplog
):
    urls = write_urls(tmp_path / "urls.txt", server, n=6)
    with S3FaultProxy(s3["endpoint"]) as proxy:
        so = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": proxy.endpoint},
            "config_kwargs": {"read_timeout": 300},  # storage would wait far longer than the watchdog
        }
        stuck = proxy.add_fault(kind="put_object", key="00000.parquet", action="stall", times=1)
        with caplog.at_level(logging.INFO, logger="spark_img2ds"):
            summary = download(
                str(tmp_path / "urls.txt"),
                spark=spark,
                output_folder=f"{bucket}/ds",
                storage_options=so,
                output_format="webdataset",
                image_size=32,
                thread_count=2,
                number_sample_per_shard=3,
                stall_timeout=2,
                allow_private_networks=True,
            )
        assert stuck.injected == 1
    assert summary.complete and summary.successes == 6
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Spark job failed") for m in messages), "the stuck worker was not ended"
    assert any(m.startswith("shard 00000 failed (attempt 1 of 2), will retry") for m in messages)
    assert_each_row_once(f"{bucket}/ds", urls, storage_options=s3["storage_options"])


@pytest.mark.parametrize("output_format", ["webdataset", "parquet", "files"])
def test_a_shard_written_twice_is_byte_identical(spark, server, tmp_path, output_format):
    """What a task retry or a speculative copy writes is the same, so either may win."""
    write_urls(tmp_path / "urls.txt", server, n=8)
    folders = [tmp_path / "a", tmp_path / "b"]
    for out in folders:
        download(
            str(tmp_path / "urls.txt"),
            spark=spark,
            output_folder=str(out),
            output_format=output_format,
            image_size=48,
            thread_count=4,
            number_sample_per_shard=4,
            allow_private_networks=True,
        )

    def data_files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(("_stats.json", "_summary.json", "_job.json", "_report.html"))
        }

    first, second = (data_files(f) for f in folders)
    assert len(first) >= 3 and first == second
