"""The command line, spark-submit and the demo, run as a user runs them (real processes)."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyspark

from spark_img2ds import download
from tests.helpers.e2e import FAULT_CASES, fault_rows, read_metadata, write_csv

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    return e


def test_console_script_writes_a_dataset(server, tmp_path):
    urls = tmp_path / "u.txt"
    urls.write_text(f"{server.url}/img/china.jpg\n{server.url}/status/404\n")
    out = tmp_path / "out"
    local_dirs = tmp_path / "spark-local"
    local_dirs.mkdir()
    proc = subprocess.run(
        [str(BIN / "spark-img2ds"), str(urls), "--output_folder", str(out), "--output_format=webdataset"]
        + ["--image_size", "32", "--processes_count", "2", "--allow_private_networks"],
        capture_output=True,
        text=True,
        env={**env(), "SPARK_LOCAL_DIRS": str(local_dirs)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "samples: 2 total, 1 success, 1 failed to download" in proc.stdout
    assert (out / "00000.tar").exists() and (out / "_SUCCESS").exists()
    # The command stops Spark itself before it exits: its scratch folders are gone.
    assert not list(local_dirs.iterdir())


def test_console_script_missing_input_is_one_line_before_spark(tmp_path):
    proc = subprocess.run(
        [str(BIN / "spark-img2ds"), str(tmp_path / "missing.txt"), "--output_folder", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"spark-img2ds: error: url_list not found: {tmp_path / 'missing.txt'}"]
    assert not (tmp_path / "o").exists()


def test_spark_submit_entrypoint(server, tmp_path):
    url_list = write_csv(tmp_path / "urls.csv", fault_rows(server.url), ["url", "caption", "rid"])
    out = tmp_path / "out"
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    proc = subprocess.run(
        [str(submit), "--master", "local[2]", str(ROOT / "jobs" / "img2ds_job.py")]
        + ["--url_list", str(url_list), "--input_format", "csv", "--caption_col", "caption"]
        + ["--output_folder", str(out), "--output_format", "webdataset", "--number_sample_per_shard", "5"]
        + ["--timeout", "2", "--thread_count", "8", "--image_size", "32", "--allow_private_networks"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_metadata(str(out))) == len(FAULT_CASES)
    # spark-submit's JVM forwards the Python driver's stderr to its own stdout
    assert "done: 17 samples" in proc.stdout + proc.stderr


def test_progress_is_logged_while_shards_run(spark, server, tmp_path, caplog):
    urls = tmp_path / "u.txt"
    urls.write_text("".join(f"{server.url}/hang/20?{i}\n" for i in range(4)) + f"{server.url}/img/china.jpg\n")
    with caplog.at_level(logging.INFO, logger="spark_img2ds"):
        download(
            str(urls),
            spark=spark,
            output_folder=str(tmp_path / "out"),
            output_format="webdataset",
            timeout=2,
            number_sample_per_shard=2,
            progress_interval=0.5,
            allow_private_networks=True,
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert lines, [r.getMessage() for r in caplog.records]
    assert lines[-1].split(",")[0].endswith("/3 shards")
    assert "images/s" in lines[-1] and "ETA" in lines[-1]


def test_demo_runs_and_prints_its_summary(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "spark_img2ds.demo", "--output", str(out), "--copies", "2"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dataset: " in proc.stdout and "(complete)" in proc.stdout
    assert "samples: 23 total, 20 success, 2 failed to download, 1 failed to resize" in proc.stdout
    assert list(out.glob("*.tar"))


def test_missing_java_is_one_clear_line(server, tmp_path):
    urls = tmp_path / "u.txt"
    urls.write_text(f"{server.url}/img/china.jpg\n")
    e = {k: v for k, v in env().items() if k != "JAVA_HOME"}
    e["PATH"] = str(tmp_path / "no-java-here")
    proc = subprocess.run(
        [str(BIN / "spark-img2ds"), str(urls), "--output_folder", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "spark-img2ds: error: Java was not found: Spark needs Java 17 (install it, or set JAVA_HOME)"
    ]
    assert not (tmp_path / "o").exists()


def test_makefile_says_when_java_is_missing(tmp_path):
    e = {k: v for k, v in env().items() if k != "JAVA_HOME"}
    e["PATH"] = "/usr/local/sbin:/usr/sbin:/sbin:" + str(tmp_path)  # make is in /usr/bin: call it by path
    proc = subprocess.run(["/usr/bin/make", "-s", "-C", str(ROOT), "java"], capture_output=True, text=True, env=e)
    assert proc.returncode != 0
    assert "Java was not found: Spark needs Java 17" in proc.stderr


def test_overwrite_keeps_the_old_dataset_when_the_input_is_bad(spark, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "00000.tar").write_bytes(b"precious")
    bad = write_csv(tmp_path / "u.csv", [{"link": "x"}], ["link"])
    from spark_img2ds.errors import InputError

    try:
        download(str(bad), spark=spark, input_format="csv", output_folder=str(out), incremental_mode="overwrite")
    except InputError as err:
        assert "'url' not found" in str(err)
    else:
        raise AssertionError("a missing url column must be an InputError")
    assert (out / "00000.tar").read_bytes() == b"precious"


def test_local_session_jvm_runs_with_the_local_options_and_task_attempts(tmp_path):
    """The session the job creates itself: local[N,4] and the JIT setting reach the real JVM."""
    script = (
        "from spark_img2ds.config import Config\n"
        "from spark_img2ds.driver.session import get_session\n"
        "spark = get_session(Config(url_list='x', processes_count=2))\n"
        "jvm = spark.sparkContext._jvm\n"
        "print('ARGS', list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))\n"
        "print('MASTER', spark.sparkContext.master)\n"
        "import pyspark\n"
        "def where(_):\n"
        "    import pyspark, sys\n"
        "    return [(pyspark.__file__, [p for p in sys.path if p.endswith('pyspark.zip')])]\n"
        "print('DRIVER', pyspark.__file__)\n"
        "print('WORKER', spark.sparkContext.parallelize([0], 1).mapPartitions(where).collect()[0])\n"
        "spark.stop()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "-XX:TieredStopAtLevel=1" in proc.stdout.split("ARGS", 1)[1].splitlines()[0]
    assert "MASTER local[2,4]" in proc.stdout
    # Its Python workers run the installed pyspark (compiled bytecode), not the bundled zip.
    driver = proc.stdout.split("DRIVER ", 1)[1].splitlines()[0]
    worker_file, zips = ast.literal_eval(proc.stdout.split("WORKER ", 1)[1].splitlines()[0])
    assert worker_file == driver and ".zip" not in worker_file
    assert zips == []
