"""Finding or creating the SparkSession a run uses."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from spark_img2ds.config import Config
from spark_img2ds.errors import EnvironmentProblem

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


def get_session(cfg: Config, spark: SparkSession | None = None) -> SparkSession:
    """The given session, else the active one, else a new one."""
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
    from pyspark import SparkConf

    # Under spark-submit the master is already set; a local session is the default otherwise.
    master = cfg.master or SparkConf().get("spark.master", None) or f"local[{cfg.processes_count}]"
    builder = (
        SparkSession.builder.master(master)
        .appName("spark_img2ds")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false" if master.startswith("local") else "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
