"""Running each tool as a whole command: wall time, counts, CPU and worker memory.

Both tools get the same URL list and options; the wall clock covers the whole
subprocess (Spark start-up included for spark_img2ds). Counts come from the
output folder (``_summary.json``, else the ``*_stats.json`` files of the shards).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.procs import REGISTRY, TreeSampler, machine_cpu, wait_gone
from bench.servers import Server
from spark_img2ds.driver.session import WORKER_DAEMON

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@dataclass(frozen=True)
class JobOptions:
    """The options both tools are run with (img2dataset's names)."""

    processes: int
    threads: int
    shard_size: int
    image_size: int = 256
    resize_mode: str = "border"
    encode_format: str = "jpg"
    encode_quality: int = 95
    output_format: str = "webdataset"
    timeout: int = 10
    retries: int = 0
    fast_decode: bool = False  # spark_img2ds only

    def flags(self) -> list[str]:
        values = {
            "input_format": "txt",
            "output_format": self.output_format,
            "image_size": self.image_size,
            "resize_mode": self.resize_mode,
            "encode_format": self.encode_format,
            "encode_quality": self.encode_quality,
            "processes_count": self.processes,
            "thread_count": self.threads,
            "number_sample_per_shard": self.shard_size,
            "extract_exif": "True",
            "compute_hash": "sha256",
            "timeout": self.timeout,
            "retries": self.retries,
        }
        if self.fast_decode:
            values["fast_decode"] = "true"
        out: list[str] = []
        for name, value in values.items():
            out += [f"--{name}", str(value)]
        return out


@dataclass
class RunResult:
    tool: str  # "ours" or "theirs"
    scenario: str  # "cpu", "latency", "tune", "rss"
    label: str  # round number, or what the run is for
    threads: int
    shard_size: int
    urls: int
    wall_s: float
    count: int
    successes: int
    images_per_s: float
    cpu_s: float  # the tool's whole process tree (user + system)
    server_cpu_s: float
    machine_busy_s: float  # every process on the machine: shows load from outside the benchmark
    peak_worker_rss_mb: float | None
    workers_seen: int
    exit_code: int
    reported_duration_s: float | None = None  # the job's own duration (_summary.json)
    startup_s: float | None = None  # command start to the job's "N rows in M shards" log line (1 s resolution)
    status_counts: dict = field(default_factory=dict)
    error_counts: dict = field(default_factory=dict)
    log: str = ""

    @property
    def cpu_ms_per_image(self) -> float | None:
        return 1000 * self.cpu_s / self.successes if self.successes else None

    def to_json(self) -> dict:
        out = asdict(self)
        out["cpu_ms_per_image"] = None if self.cpu_ms_per_image is None else round(self.cpu_ms_per_image, 3)
        return out


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and not k.startswith("PYSPARK_")}
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def ours_command() -> list[str]:
    """spark_img2ds's CLI from the environment running the benchmark (the project's .venv)."""
    script = Path(sys.executable).parent / "spark-img2ds"
    return [str(script)] if script.exists() else [sys.executable, "-m", "spark_img2ds.cli"]


def ours_env() -> dict[str, str]:
    return clean_env(
        {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    )


def theirs_env() -> dict[str, str]:
    # albumentations (an img2dataset dependency) checks PyPI for updates at import unless told not to.
    return clean_env({"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_SILENT": "true"})


def is_pyspark_worker(cmd: str) -> bool:
    """PySpark's daemon or a worker: started as pyspark's own modules, or as the daemon our local sessions name."""
    return any(module in cmd for module in ("pyspark.daemon", "pyspark.worker", WORKER_DAEMON))


def is_forked_pyspark_worker(cmd: str, parent_cmd: str) -> bool:
    """A worker forked by the daemon, which ignores SIGCHLD: its CPU time is never reported to us."""
    return is_pyspark_worker(cmd) and is_pyspark_worker(parent_cmd)


def is_python(cmd: str) -> bool:
    first = cmd.split(" ", 1)[0]
    return "python" in os.path.basename(first)


def ensure_img2dataset(venv: Path, version: str) -> Path:
    """img2dataset==version in its own virtualenv under venv (installed once, from PyPI)."""
    marker = venv / f".installed-img2dataset-{version}"
    binary = venv / "bin" / "img2dataset"
    if marker.exists() and binary.exists():
        return binary
    if venv.exists():
        shutil.rmtree(venv)
    print(f"bench: installing img2dataset=={version} into {venv} (from PyPI) ...", flush=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    proc = subprocess.run(pip + [f"img2dataset=={version}"], capture_output=True, text=True)
    if proc.returncode != 0 or not binary.exists():
        raise SystemExit(f"bench: pip install img2dataset=={version} failed:\n{proc.stderr[-3000:]}")
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import img2dataset"], capture_output=True, text=True, env=theirs_env()
    )
    if check.returncode != 0:
        raise SystemExit(f"bench: img2dataset=={version} installed but does not import:\n{check.stderr[-3000:]}")
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True)
    marker.write_text(freeze.stdout)
    print(f"bench: img2dataset installed in {time.monotonic() - started:.0f}s", flush=True)
    return binary


def venv_versions(venv: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Versions of some packages from the install marker's pip freeze."""
    out: dict[str, str] = {}
    for marker in venv.glob(".installed-img2dataset-*"):
        for line in marker.read_text().splitlines():
            name, _, version = line.partition("==")
            if name.lower() in names:
                out[name.lower()] = version
    return out


def read_counts(out_dir: Path) -> tuple[int, int, dict, dict, float | None]:
    """(count, successes, status counts, error counts, the tool's own duration) of an output folder."""
    summary = out_dir / "_summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        return (
            int(data.get("count", 0)),
            int(data.get("successes", 0)),
            dict(data.get("status_counts", {})),
            dict(data.get("error_counts", {})),
            data.get("duration"),
        )
    count = successes = 0
    statuses: Counter = Counter()
    errors: Counter = Counter()
    for path in sorted(out_dir.glob("*_stats.json")):
        data = json.loads(path.read_text())
        count += int(data.get("count", 0))
        successes += int(data.get("successes", 0))
        for key in ("successes", "failed_to_download", "failed_to_resize"):
            statuses[key] += int(data.get(key, 0))
        for message, n in (data.get("status_dict") or {}).items():
            if message != "success":
                errors[message] += int(n)
    return count, successes, dict(statuses), dict(errors), None


PLANNED_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) INFO job \S+ \d+ rows in \d+ shards")


def startup_seconds(log_path: Path, started_epoch: float) -> float | None:
    """Seconds from the command's start to spark_img2ds's log line announcing the shards to download."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        m = PLANNED_LINE.match(line)
        if m:
            start = time.localtime(started_epoch)
            at = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
            began = start.tm_hour * 3600 + start.tm_min * 60 + start.tm_sec + (started_epoch % 1)
            return round((at - began) % 86400, 1)
    return None


def run_tool(
    tool: str,
    cmd: list[str],
    env: dict[str, str],
    out_dir: Path,
    log_path: Path,
    *,
    scenario: str,
    label: str,
    opts: JobOptions,
    urls: int,
    server: Server,
    timeout: float,
    sample_interval: float = 0.5,
    keep_output: bool = False,
) -> RunResult:
    """Run one tool to completion and measure it."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rss_match = is_pyspark_worker if tool == "ours" else is_python
    unreaped = is_forked_pyspark_worker if tool == "ours" else None
    server_cpu0 = server.cpu_seconds()
    busy0, _ = machine_cpu()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        started = time.perf_counter()
        started_epoch = time.time()
        proc = REGISTRY.popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(out_dir.parent)
        )
        sampler = TreeSampler(proc.pid, rss_match, unreaped, interval=sample_interval).start()
        try:
            exit_code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"bench: {tool} did not finish within {timeout:.0f}s; stopping it", flush=True)
            exit_code = -9
        wall = time.perf_counter() - started
        # A JVM or worker may outlive the command by a moment: let it end (it is re-parented to
        # us, see become_subreaper) so that its CPU time is counted, then end what is left.
        protected = REGISTRY.pids() - {proc.pid}
        reaped: set[int] = set()
        left = wait_gone(sampler.alive, protected, timeout=30, reaped=reaped)
        sampler.stop()
        REGISTRY.stop(proc)
        if left:
            killed = sampler.kill_leftovers()
            if killed:
                log.write(f"bench: killed {len(killed)} leftover process(es): {killed}\n")
        wait_gone(sampler.alive, protected, timeout=5, reaped=reaped)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, _ = machine_cpu()
    cpu = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    cpu += sampler.unreaped_cpu_s(reaped)
    count, successes, statuses, errors, reported = read_counts(out_dir) if out_dir.exists() else (0, 0, {}, {}, None)
    if not keep_output and out_dir.exists():
        shutil.rmtree(out_dir, ignore_errors=True)
    top_errors = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:10])
    return RunResult(
        tool=tool,
        scenario=scenario,
        label=label,
        threads=opts.threads,
        shard_size=opts.shard_size,
        urls=urls,
        wall_s=round(wall, 3),
        count=count,
        successes=successes,
        images_per_s=round(successes / wall, 2) if wall > 0 else 0.0,
        cpu_s=round(cpu, 2),
        server_cpu_s=round(server.cpu_seconds() - server_cpu0, 2),
        machine_busy_s=round(busy1 - busy0, 2),
        peak_worker_rss_mb=sampler.max_mb,
        workers_seen=len(sampler.peaks_kb),
        exit_code=exit_code,
        reported_duration_s=None if reported is None else round(float(reported), 3),
        startup_s=startup_seconds(log_path, started_epoch) if tool == "ours" else None,
        status_counts=statuses,
        error_counts=top_errors,
        log=str(log_path),
    )


def run_ours(url_list: Path, out_dir: Path, opts: JobOptions, **kw) -> RunResult:
    cmd = ours_command() + ["--url_list", str(url_list), "--output_folder", str(out_dir)] + opts.flags()
    cmd += ["--allow_private_networks", "True"]
    return run_tool("ours", cmd, ours_env(), out_dir, opts=opts, **kw)


def run_theirs(binary: Path, url_list: Path, out_dir: Path, opts: JobOptions, **kw) -> RunResult:
    cmd = [str(binary), "--url_list", str(url_list), "--output_folder", str(out_dir)] + opts.flags()
    cmd += ["--distributor", "multiprocessing", "--enable_wandb", "False"]
    return run_tool("theirs", cmd, theirs_env(), out_dir, opts=opts, **kw)
