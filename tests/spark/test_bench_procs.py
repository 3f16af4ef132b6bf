"""The benchmark's CPU accounting: a process whose usage reaches us through wait() is not also read from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import TreeSampler, stat_fields

REPO = Path(__file__).resolve().parents[2]

# Run in a process of its own, so that reaping "any exited child" cannot touch pytest's children.
SCRIPT = """
import json, subprocess, sys, time
from bench.procs import reap_zombies, stat_fields

def zombie():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while (f := stat_fields(child.pid)) and f[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    return child

reaped = set()
kept = zombie()
reap_zombies({kept.pid}, reaped)
kept_reaped, kept_exit = kept.pid in reaped, kept.wait(5)
free = zombie()
reap_zombies({kept.pid}, reaped)
print(json.dumps({
    "free_reaped": free.pid in reaped,
    "free_gone": stat_fields(free.pid) is None,
    "kept_reaped": kept_reaped,
    "kept_exit": kept_exit,
}))
"""


def test_reaping_records_the_pids_whose_usage_now_reaches_us_and_leaves_protected_ones():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"free_reaped": True, "free_gone": True, "kept_reaped": False, "kept_exit": 0}


def test_cpu_read_from_proc_is_not_counted_again_for_processes_we_reaped():
    sampler = TreeSampler(root=0, rss_match=lambda cmd: False)
    sampler.cpu_s.update({101: 2.0, 102: 3.0, 103: 0.5})
    assert sampler.unreaped_cpu_s() == 5.5
    assert sampler.unreaped_cpu_s({102}) == 2.5


def test_the_python_workers_of_a_local_session_are_counted_as_pyspark_workers(spark):
    """The bench finds our workers by command line; local sessions start them from our daemon module."""
    from bench.procs import cmdline
    from bench.runners import is_forked_pyspark_worker, is_pyspark_worker

    def command_lines(_):  # read in the task: an idle worker may be gone by the time collect() returns
        def read(pid: int) -> str:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                return fh.read().replace(b"\0", b" ").decode().strip()

        return [(read(os.getpid()), read(os.getppid()))]

    worker, daemon = spark.sparkContext.parallelize([0], 1).mapPartitions(command_lines).collect()[0]
    assert "spark_img2ds.tuning.worker_daemon" in daemon  # the session fixture starts workers as a run does
    assert is_pyspark_worker(worker) and is_forked_pyspark_worker(worker, daemon)
    assert not is_pyspark_worker(cmdline(os.getpid()))  # the driver (pytest here) is not one


def test_a_process_seen_before_its_exec_is_classified_by_its_new_command():
    """The sampler may poll between fork and exec; the kind must follow the exec."""
    # The marker is joined only at exec time, so the command line before exec does not hold it.
    late = "'import time; time.sleep(1.5)  # exec-' + 'marker'"
    early = f"import os, sys, time; time.sleep(0.6); os.execv(sys.executable, [sys.executable, '-c', {late}])"
    proc = subprocess.Popen([sys.executable, "-c", early])
    sampler = TreeSampler(
        root=os.getpid(),
        rss_match=lambda cmd: "exec-marker" in cmd,
        unreaped_match=lambda cmd, parent: "exec-marker" in cmd,
        interval=0.1,
    ).start()
    try:
        # Left unreaped for a few polls: a zombie's command line is empty, which must not reclassify it.
        deadline = time.monotonic() + 10
        while (f := stat_fields(proc.pid)) and f[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.4)
    finally:
        sampler.stop()
        proc.wait(10)
    seen = sampler.seen[proc.pid]
    assert "exec-marker" in seen.cmd and seen.rss and seen.unreaped
    assert sampler.cpu_s.get(proc.pid, -1) >= 0 and proc.pid in sampler.peaks_kb
