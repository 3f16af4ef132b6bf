"""The session helpers against a real local SparkSession."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from spark_img2ds.driver import sharding
from spark_img2ds.tuning.warmup import WorkerWarmUp, warm_python_workers


def sql_worker_pids(spark) -> set[int]:
    """The pids of the Python workers a mapInArrow job (the download's kind) runs in."""

    def report_pid(batches):  # local, so Spark ships it by value: the workers cannot import this module
        import pyarrow as pa

        for _ in batches:  # a worker that leaves input unread is not reused
            pass
        yield pa.RecordBatch.from_pylist([{"pid": os.getpid()}], pa.schema([("pid", pa.int64())]))

    n = spark.sparkContext.defaultParallelism
    return {r["pid"] for r in spark.range(0, n, 1, n).mapInArrow(report_pid, "pid long").collect()}


def test_warm_up_starts_the_workers_that_the_download_tasks_then_use(spark):
    warm = warm_python_workers(spark)
    warm.join(120)
    assert not warm.is_alive() and warm.error is None
    assert warm.pids and os.getpid() not in warm.pids  # real worker processes, not the driver
    with sharding.pinned_split_conf(spark):  # the settings a run holds while its jobs run
        used = sql_worker_pids(spark)
    assert used <= warm.pids  # the download tasks would not pay for a fresh worker


def test_without_the_run_settings_sql_tasks_would_start_their_own_workers(spark):
    """Why the run turns simplified tracebacks off: the two worker pools are apart otherwise."""
    warm = warm_python_workers(spark)
    warm.join(120)
    assert not sql_worker_pids(spark) & warm.pids


def test_a_failed_warm_up_is_reported_not_raised(spark):
    warm = WorkerWarmUp(spark)
    warm.spark = None  # what a session torn down under it looks like: every call fails
    warm.start()
    warm.join(30)
    assert isinstance(warm.error, AttributeError)


def test_finish_cancels_a_warm_up_still_queued_behind_busy_slots(spark, tmp_path):
    """A run never waits for its warm-up: one still queued when the run ends is cancelled."""
    sc = spark.sparkContext
    n = sc.defaultParallelism
    marks = str(tmp_path)

    def hold_slot(i: int) -> None:
        open(os.path.join(marks, f"running-{i}"), "w").close()
        time.sleep(8)

    def hold_all_slots() -> None:
        sc.setJobGroup("test-blocker", "holds every task slot")
        sc.parallelize(range(n), n).foreach(hold_slot)

    blocker = threading.Thread(target=hold_all_slots, daemon=True)
    blocker.start()
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("running-*"))) < n:
        assert time.monotonic() < deadline, "the blocking job never took the slots"
        time.sleep(0.05)
    warm = warm_python_workers(spark)
    started = time.monotonic()
    warm.finish(timeout=0.3)
    warm.join(5)
    assert not warm.is_alive() and time.monotonic() - started < 5  # well before the slots free up
    assert warm.error is not None and not warm.pids  # cancelled, not completed
    blocker.join(30)


def python_prints(code: str, timeout: float = 60) -> list[str]:
    """What a fresh interpreter running code prints, split into words (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_preload_imports_in_the_background_without_deadlocking_a_fork():
    """What mapInArrow's checks import arrives in the background, distutils only after release().

    PySpark starts the JVM through a fork with a preexec_fn, as the child here is started.
    Such a fork takes logging's lock, then the import lock; setuptools' distutils shim holds
    the import lock while setuptools, which takes logging's lock, is imported. The fork is
    made the moment setuptools starts to load (at once, if the preload imported distutils
    before release), and it must return.
    """
    code = (
        "import subprocess, sys, time\n"
        "from spark_img2ds.tuning.warmup import preload_driver_modules\n"
        "assert 'pandas' not in sys.modules and 'distutils' not in sys.modules\n"
        "preload = preload_driver_modules()\n"
        "assert preload.daemon\n"
        "deadline = time.monotonic() + 2\n"
        "while 'setuptools' not in sys.modules and time.monotonic() < deadline:\n"
        "    time.sleep(0.0005)\n"
        "subprocess.run(['true'], preexec_fn=lambda: None, check=True)\n"
        "early = 'distutils' in sys.modules\n"
        "preload.release()\n"
        "preload.join(60)\n"
        "print(early, 'pandas' in sys.modules and 'distutils.version' in sys.modules)\n"
    )
    assert python_prints(code) == ["False", "True"]


def test_importing_the_job_module_leaves_the_heavy_run_modules_to_the_preload():
    """The JVM is launched before OpenCV, pyarrow and numpy load, not after (about 0.25 s)."""
    code = (
        "import sys\n"
        "import spark_img2ds.driver.job\n"
        "print(sorted(m for m in ('cv2', 'numpy', 'pyarrow', 'spark_img2ds.worker.task') if m in sys.modules))\n"
    )
    assert python_prints(code) == ["[]"]


def test_preload_imports_the_run_modules_while_forks_and_the_driver_thread_go_on(tmp_path):
    """Forks with a preexec_fn (how PySpark starts the JVM) return while the run modules load in
    the background, and the driver thread's own import of them waits for the preload, no deadlock.

    A probe module, imported by the preload first, holds the preload inside an import until
    the driver thread has forked once, so at least one fork overlaps an import however the two
    threads are scheduled; the driver thread then forks on while the run modules load.
    """
    (tmp_path / "img2ds_hold_probe.py").write_text(
        "import builtins, time\n"
        "deadline = time.monotonic() + 30\n"
        "while not getattr(builtins, 'img2ds_forked', False) and time.monotonic() < deadline:\n"
        "    time.sleep(0.001)\n"
    )
    code = (
        "import builtins, subprocess, sys, time\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from spark_img2ds.driver.job import RUN_MODULES\n"
        "from spark_img2ds.tuning.warmup import preload_driver_modules\n"
        "preload = preload_driver_modules(('img2ds_hold_probe',) + RUN_MODULES)\n"
        "deadline = time.monotonic() + 30\n"
        "while 'img2ds_hold_probe' not in sys.modules and time.monotonic() < deadline:\n"
        "    time.sleep(0.0005)\n"
        "held = 'img2ds_hold_probe' in sys.modules and 'spark_img2ds.worker.task' not in sys.modules\n"
        "forks = 0\n"
        "while forks == 0 or ('spark_img2ds.worker.task' not in sys.modules and time.monotonic() < deadline):\n"
        "    subprocess.run(['true'], preexec_fn=lambda: None, check=True)\n"
        "    forks += 1\n"
        "    builtins.img2ds_forked = True\n"
        "from spark_img2ds.driver import sharding\n"
        "import spark_img2ds.worker.task\n"
        "before_release = all(m in sys.modules for m in ('cv2', 'pyarrow', 'numpy'))\n"
        "preload.release()\n"
        "preload.join(60)\n"
        "print(held, before_release, callable(sharding.assign_shards), preload.is_alive())\n"
    )
    assert python_prints(code, timeout=120) == ["True", "True", "True", "False"]
