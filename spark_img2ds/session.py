"""Finding or creating the SparkSession a run uses."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from spark_img2ds import jvm_cache
from spark_img2ds.config import Config
from spark_img2ds.errors import EnvironmentProblem

LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"
LOCAL_TASK_ATTEMPTS = 4  # Spark's spark.task.maxFailures default on a cluster
WORKER_DAEMON = "spark_img2ds.worker_daemon"  # pyspark from its installed bytecode, not pyspark.zip

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def java_executable() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def ensure_java() -> None:
    if java_executable() is None:
        raise EnvironmentProblem("Java was not found: Spark needs Java 17 (install it, or set JAVA_HOME)")


def local_java_options() -> str:
    """JVM options for a local session: C1-only JIT, and the class archive when one was built."""
    return f"{LOCAL_JVM_OPTIONS} {jvm_cache.java_options(jvm_cache.usable_archive())}".strip()


PRELOAD_RELEASE_TIMEOUT = 600.0  # seconds the preload waits for the session before it gives up its head start


class DriverPreload(threading.Thread):
    """Imports, in the background, what the driver needs once its session stands.

    The given modules (the run's own, which bring OpenCV, pyarrow and numpy:
    about 0.25 s) and pandas (PySpark's pandas_udf checks the pandas and pyarrow
    versions: about 0.2 s) are imported at once, while the JVM starts and the driver
    thread only waits, so the JVM is launched that much sooner. Those checks also
    import distutils.version (0.13 s more: setuptools' shim loads setuptools and
    pkg_resources), which waits for release(), which the driver calls once the
    session stands: setuptools' shim imports setuptools inside a meta-path finder, that
    is holding the interpreter's import lock, and setuptools takes logging's lock. PySpark
    starts the JVM through a fork with a preexec_fn, which takes logging's lock and then
    the import lock, so a thread importing distutils during that fork deadlocks the
    driver. preload_driver_modules imports pyspark.sql (and with it pyspark's own pandas
    modules) before it starts the thread, so the two threads never import into one cycle.
    """

    def __init__(self, modules: tuple[str, ...] = ()) -> None:
        super().__init__(name="img2ds-preload", daemon=True)
        self.modules = modules
        self._released = threading.Event()

    def release(self) -> None:
        """The session stands (or could not be had): the distutils import no longer races a fork."""
        self._released.set()

    def run(self) -> None:
        with contextlib.suppress(Exception):  # only a head start: the driver imports (and reports) these itself
            for name in self.modules:
                importlib.import_module(name)
            import pandas  # noqa: F401

            if not self._released.wait(PRELOAD_RELEASE_TIMEOUT):
                return
            from pyspark.sql.pandas.utils import require_minimum_pandas_version, require_minimum_pyarrow_version

            require_minimum_pandas_version()
            require_minimum_pyarrow_version()


def preload_driver_modules(modules: tuple[str, ...] = ()) -> DriverPreload:
    """Start the driver's background imports (see DriverPreload); call release() once the session stands."""
    import pyspark.sql  # noqa: F401

    preload = DriverPreload(modules)
    preload.start()
    return preload


def get_session(cfg: Config, spark: SparkSession | None = None, java_options: str | None = None) -> SparkSession:
    """The given session, else the active one, else a new one.

    java_options are added to the local options of a local session this creates.
    """
    if spark is not None:
        return spark
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and cfg.master is None:
        return active
    ensure_java()
    # Executors must run the same interpreter (the one with our dependencies).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if cfg.master is None or cfg.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # before the JVM starts
    builder = SparkSession.builder.config("spark.ui.showConsoleProgress", "false").config(
        "spark.sql.execution.arrow.pyspark.enabled", "true"
    )
    # spark-submit started the JVM with the user's --master, --name and --conf: leave them alone.
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if cfg.master is not None or not launched_by_submit:
        # local[N, F]: plain local mode gives a task one attempt, so a crashed worker would fail the job.
        master = cfg.master or f"local[{cfg.processes_count},{LOCAL_TASK_ATTEMPTS}]"
        builder = builder.master(master).config("spark.ui.enabled", "false" if master.startswith("local") else "true")
        if not launched_by_submit:
            builder = builder.appName("spark_img2ds")
            if master.startswith("local"):
                # The JVM only plans and moves rows here; C1-only JIT spends less of the cores warming up
                # (+10% images/s measured on 12,000 URLs, 2 cores), and the class archive starts it sooner.
                options = f"{local_java_options()} {java_options or ''}".strip()
                builder = builder.config("spark.driver.extraJavaOptions", options).config(
                    "spark.python.daemon.module", WORKER_DAEMON
                )
    session = builder.getOrCreate()
    if not launched_by_submit:  # under spark-submit, the user's log4j settings rule
        session.sparkContext.setLogLevel("WARN")
    return session


def _start_rdd_worker(rows: Iterator[int]) -> list[int]:
    """The warm-up task: import what the download tasks need, then report this worker's pid."""
    import spark_img2ds.worker  # noqa: F401

    for _ in rows:
        pass
    return [os.getpid()]


class WorkerWarmUp(threading.Thread):
    """Starts one Python worker per core while the driver plans, so the first shards start at once.

    A fresh worker costs a task about a second (fork, imports). The warm-up is a
    small RDD job, quick to submit; the download's mapInArrow tasks reuse its idle
    workers because a run turns off simplified tracebacks, the one difference in
    worker environment that makes Spark pool SQL and RDD workers apart
    (sharding.SPLIT_CONF). Best effort: a failure only means the download starts cold.
    """

    GROUP = "spark_img2ds-warmup"

    def __init__(self, spark: SparkSession) -> None:
        super().__init__(name="img2ds-warmup", daemon=True)
        self.spark = spark
        self.pids: set[int] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sc = self.spark.sparkContext
            n = max(1, sc.defaultParallelism)
            sc.setJobGroup(self.GROUP, "spark_img2ds: start Python workers")
            self.pids = set(sc.parallelize(range(n), n).mapPartitions(_start_rdd_worker).collect())
        except BaseException as err:  # noqa: BLE001  (reported to whoever asks, never raised)
            self.error = err

    def finish(self, timeout: float = 2.0) -> None:
        """Wait briefly for the warm-up, then cancel it if it is still queued (a run never waits on it)."""
        self.join(timeout)
        if self.is_alive():
            with contextlib.suppress(Exception):
                self.spark.sparkContext.cancelJobGroup(self.GROUP)


def warm_python_workers(spark: SparkSession) -> WorkerWarmUp:
    """Start the warm-up in the background and return it."""
    warm = WorkerWarmUp(spark)
    warm.start()
    return warm
