"""A real standalone cluster: killed workers, a killed driver and speculation lose and duplicate nothing.

The job is submitted with spark-submit through jobs/img2ds_job.py, as a user runs it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from spark_img2ds import download
from tests.helpers.cluster import StandaloneCluster, kill_group
from tests.helpers.e2e import assert_each_row_once, read_metadata, read_tars

pytestmark = pytest.mark.slow
NAMES = ["china.jpg", "flower.jpg", "coffee.jpg", "rocket.jpg", "grace_hopper.jpg"]
PER_SHARD = 5
OPTS = dict(
    input_format="txt",
    output_format="webdataset",
    image_size=64,
    thread_count=1,
    number_sample_per_shard=PER_SHARD,
    timeout=10,
    allow_private_networks=True,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = StandaloneCluster(tmp_path_factory.mktemp("cluster"), workers=2, cores=1)
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def workers(cluster):
    """Two live workers at the start of every test (an earlier test may have killed one)."""
    cluster.ensure_workers()
    return cluster


def write_urls(path: Path, server, n: int, delay: float, slow: dict[int, float] | None = None) -> list[str]:
    """n distinct URLs of real images, each answered after `delay` s (or slow[row] s)."""
    urls = [
        f"{server.url}/delay/{(slow or {}).get(i, delay)}/{NAMES[i % len(NAMES)]}?row={i}&file={path.stem}"
        for i in range(n)
    ]
    path.write_text("\n".join(urls) + "\n")
    return urls


def job_args(url_list: Path, out: Path, **extra) -> list[str]:
    args = ["--url_list", str(url_list), "--output_folder", str(out)]
    for k, v in {**OPTS, **extra}.items():
        args += [f"--{k}", str(v)]
    return args


def committed_shards(out: Path) -> int:
    return len(list(out.glob("*_stats.json")))


def wait_for(cond, proc, what: str, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        assert proc.poll() is None, f"the job ended (exit {proc.returncode}) before {what}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def log_text(cluster, name: str) -> str:
    return (cluster.workdir / name).read_text(errors="replace")


def test_killed_worker_mid_job_every_row_once(workers, server, tmp_path):
    urls = write_urls(tmp_path / "urls.txt", server, n=60, delay=0.25)
    out = tmp_path / "ds"
    driver = workers.submit(job_args(tmp_path / "urls.txt", out), log_name="kill-worker.log")
    wait_for(lambda: committed_shards(out) >= 2, driver, "two shards were committed")
    workers.kill_worker(workers.workers[0])
    assert driver.wait(timeout=300) == 0, log_text(workers, "kill-worker.log")[-3000:]

    log = log_text(workers, "kill-worker.log")
    assert re.search(r"Lost executor|ExecutorLostFailure|Lost task", log), "no task was lost: the kill missed"
    rows = assert_each_row_once(str(out), urls)
    assert all(r["status"] == "success" for r in rows)


def test_killed_driver_then_rerun_equals_a_clean_run(workers, server, spark, tmp_path):
    urls = write_urls(tmp_path / "urls.txt", server, n=50, delay=0.25)
    out = tmp_path / "ds"
    args = job_args(tmp_path / "urls.txt", out)
    driver = workers.submit(args, log_name="kill-driver-1.log")
    wait_for(lambda: committed_shards(out) >= 2, driver, "two shards were committed")
    kill_group(driver)
    driver.wait(timeout=60)
    interrupted_at = committed_shards(out)
    assert 2 <= interrupted_at < len(urls) // PER_SHARD
    assert not (out / "_SUCCESS").exists()

    rerun = workers.submit(args, log_name="kill-driver-2.log")
    assert rerun.wait(timeout=300) == 0, log_text(workers, "kill-driver-2.log")[-3000:]
    assert re.search(r"\d+ already done", log_text(workers, "kill-driver-2.log"))
    assert_each_row_once(str(out), urls)

    clean = tmp_path / "clean"
    download(str(tmp_path / "urls.txt"), spark=spark, output_folder=str(clean), **OPTS)
    fields = ("key", "url", "status", "error_message", "width", "height", "sha256")
    resumed_rows = {r["key"]: tuple(r[f] for f in fields) for r in read_metadata(str(out))}
    clean_rows = {r["key"]: tuple(r[f] for f in fields) for r in read_metadata(str(clean))}
    assert resumed_rows == clean_rows
    assert read_tars(str(out)) == read_tars(str(clean))  # image by image, caption and json included


def test_speculative_duplicate_of_a_slow_shard_duplicates_nothing(workers, server, tmp_path):
    # Shard 1 answers slowly; the others quickly. Speculation launches a second attempt of it,
    # which also writes shard 1 until the first attempt wins and Spark kills it.
    slow_rows = {i: 10.0 for i in range(PER_SHARD, 2 * PER_SHARD)}
    urls = write_urls(tmp_path / "urls.txt", server, n=40, delay=0.05, slow=slow_rows)
    out = tmp_path / "ds"
    conf = {
        "spark.speculation": "true",
        "spark.speculation.interval": "100ms",
        "spark.speculation.quantile": "0.5",
        "spark.speculation.multiplier": "1.5",
        "spark.speculation.minTaskRuntime": "500ms",
    }
    before = dict(server.path_hits)
    args = job_args(tmp_path / "urls.txt", out, thread_count=PER_SHARD, timeout=30)
    driver = workers.submit(args, conf, "speculation.log")
    assert driver.wait(timeout=300) == 0, log_text(workers, "speculation.log")[-3000:]

    slow_paths = [u.split(server.url, 1)[1] for i, u in enumerate(urls) if i in slow_rows]
    fetched = [server.path_hits[p] - before.get(p, 0) for p in slow_paths]
    assert max(fetched) >= 2, f"no speculative attempt ran (hits {fetched}): the test proves nothing"
    assert "as speculatable" in log_text(workers, "speculation.log")
    rows = assert_each_row_once(str(out), urls)
    assert all(r["status"] == "success" for r in rows)
