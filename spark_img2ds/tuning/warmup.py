"""Head starts for a run: the driver's imports while the JVM starts, and Python workers started early.

Given what to import by the caller; imports nothing of the product.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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


def _start_rdd_worker(modules: tuple[str, ...], rows: Iterator[int]) -> list[int]:
    """The warm-up task: import what the download tasks need, then report this worker's pid."""
    for name in modules:
        importlib.import_module(name)
    for _ in rows:
        pass
    return [os.getpid()]


class WorkerWarmUp(threading.Thread):
    """Starts one Python worker per core while the driver plans, so the first shards start at once.

    A fresh worker costs a task about a second (fork, imports). The warm-up is a
    small RDD job, quick to submit; the download's mapInArrow tasks reuse its idle
    workers because a run turns off simplified tracebacks, the one difference in
    worker environment that makes Spark pool SQL and RDD workers apart
    (the driver's split settings turn them off). Best effort: a failure only means the download starts cold.
    """

    GROUP = "spark_img2ds-warmup"

    def __init__(self, spark: SparkSession, modules: tuple[str, ...] = ()) -> None:
        super().__init__(name="img2ds-warmup", daemon=True)
        self.spark = spark
        self.modules = modules
        self.pids: set[int] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sc = self.spark.sparkContext
            n = max(1, sc.defaultParallelism)
            sc.setJobGroup(self.GROUP, "spark_img2ds: start Python workers")
            task = functools.partial(_start_rdd_worker, self.modules)
            self.pids = set(sc.parallelize(range(n), n).mapPartitions(task).collect())
        except BaseException as err:  # noqa: BLE001  (reported to whoever asks, never raised)
            self.error = err

    def finish(self, timeout: float = 2.0) -> None:
        """Wait briefly for the warm-up, then cancel it if it is still queued (a run never waits on it)."""
        self.join(timeout)
        if self.is_alive():
            with contextlib.suppress(Exception):
                self.spark.sparkContext.cancelJobGroup(self.GROUP)


def warm_python_workers(spark: SparkSession, modules: tuple[str, ...] = ()) -> WorkerWarmUp:
    """Start the warm-up, importing modules in each worker, in the background and return it."""
    warm = WorkerWarmUp(spark, modules)
    warm.start()
    return warm
