"""A real Spark standalone cluster on loopback, started from the installed pyspark.

One master and N workers run as their own process groups, so a test can kill a
"machine" (the worker, its executor and its Python workers) with one signal, and
teardown stops every process it started by PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "img2ds_job.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_env(local_ip: str = "127.0.0.1") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP=local_ip,
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    return env


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by proc (it was started in a new session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class StandaloneCluster:
    """spark-class Master and Worker processes; `submit` runs jobs/img2ds_job.py on it."""

    def __init__(self, workdir: Path, workers: int = 2, cores: int = 1, memory: str = "1g") -> None:
        self.workdir = workdir
        self.n_workers, self.cores, self.memory = workers, cores, memory
        self.port, self.ui_port = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._started: list[subprocess.Popen] = []

    def _spawn(self, args: list[str], log_name: str, local_ip: str = "127.0.0.1") -> subprocess.Popen:
        log = open(self.workdir / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), *args],
            env=spark_env(local_ip),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._started.append(proc)
        return proc

    def start(self) -> StandaloneCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.master = self._spawn(
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(self.ui_port),
            ],
            "master.log",
        )
        self._wait(lambda: self.state() is not None, "the master to start")
        self.ensure_workers()
        return self

    def start_worker(self) -> subprocess.Popen:
        """A worker on its own loopback address (127.0.0.2, .3, ...): a host of its own, as
        Spark sees it, so that speculation may place a task's copy there."""
        i = len(self.workers)
        host = f"127.0.0.{2 + i}"
        work_dir = self.workdir / f"worker{i}"
        work_dir.mkdir(exist_ok=True)
        proc = self._spawn(
            [
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                host,
                "--cores",
                str(self.cores),
                "--memory",
                self.memory,
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(work_dir),
                self.master_url,
            ],
            f"worker{i}.log",
            host,
        )
        self.workers.append(proc)
        return proc

    def ensure_workers(self) -> None:
        """Start workers until n_workers are alive and registered."""
        while len([w for w in self.workers if w.poll() is None]) < self.n_workers:
            self.start_worker()
        self._wait(lambda: self.alive_workers() >= self.n_workers, f"{self.n_workers} workers to register")

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """A lost machine: SIGKILL the worker with its executor and Python workers."""
        kill_group(proc)
        proc.wait(timeout=30)

    def state(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def alive_workers(self) -> int:
        state = self.state() or {}
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def _wait(self, ready, what: str, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"timed out waiting for {what}; logs in {self.workdir}")

    def submit(
        self,
        args: list[str],
        conf: dict[str, str] | None = None,
        log_name: str = "driver.log",
        submit_args: list[str] | None = None,
        python: str | None = None,
    ):
        """Start spark-submit of the job entrypoint (client mode) in its own process group.

        submit_args go before the script (--py-files ...); python is the driver's and executors' interpreter.
        """
        confs = {
            "spark.executor.memory": "512m",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            **(conf or {}),
        }
        cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", self.master_url]
        for k, v in confs.items():
            cmd += ["--conf", f"{k}={v}"]
        cmd += [*(submit_args or []), str(JOB), *args]
        env = spark_env()
        if python is not None:  # that interpreter's own paths only
            env.update(PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python)
            env.pop("PYTHONPATH", None)
        log = open(self.workdir / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self._started):
            kill_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self._started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            kill_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
