"""CPU pinning of shard tasks: distinct CPUs for concurrent tasks, released on exit or death.

Concurrent tasks are separate Python workers, so the other claimants here are real processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

import pytest

from spark_img2ds.affinity import pinned_cpu

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
pytestmark = pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs at least 2 CPUs")
HOLDER = (
    "import os, sys, time\n"
    "from spark_img2ds.affinity import pinned_cpu\n"
    "with pinned_cpu(True, sys.argv[1]) as cpu:\n"
    "    print(cpu, sorted(os.sched_getaffinity(0)), flush=True)\n"
    "    time.sleep(120)\n"
)


@contextlib.contextmanager
def holders(locks, n: int):
    """n worker-like processes, each holding a claim; yields [(process, cpu)]."""
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(locks)], stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    try:
        out = []
        for p in procs:
            cpu, _, mask = p.stdout.readline().partition(" ")
            out.append((p, None if cpu == "None" else int(cpu), mask.strip()))
        yield out
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def test_concurrent_claims_get_distinct_cpus_and_pin_the_thread(tmp_path):
    with holders(tmp_path, 1) as [(_, other, mask)]:
        assert other in CPUS and mask == f"[{other}]"
        with pinned_cpu(True, str(tmp_path)) as cpu:
            assert cpu in CPUS and cpu != other
            assert os.sched_getaffinity(0) == {cpu}
    assert sorted(os.sched_getaffinity(0)) == CPUS  # restored on exit


def test_threads_started_inside_inherit_the_pin(tmp_path):
    box = {}
    with pinned_cpu(True, str(tmp_path)) as cpu:
        t = threading.Thread(target=lambda: box.setdefault("mask", os.sched_getaffinity(0)))
        t.start()
        t.join(10)
    assert box["mask"] == {cpu}


def test_no_free_cpu_runs_unpinned(tmp_path):
    with holders(tmp_path, len(CPUS)) as held:
        assert sorted(cpu for _, cpu, _ in held) == CPUS
        with pinned_cpu(True, str(tmp_path)) as cpu:
            assert cpu is None
            assert sorted(os.sched_getaffinity(0)) == CPUS


def test_disabled_does_not_pin(tmp_path):
    with pinned_cpu(False, str(tmp_path)) as cpu:
        assert cpu is None
        assert sorted(os.sched_getaffinity(0)) == CPUS
    assert not list(tmp_path.iterdir())


def test_a_killed_holder_releases_its_cpu(tmp_path):
    with holders(tmp_path, len(CPUS)) as held:
        victim, victim_cpu, _ = held[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        with pinned_cpu(True, str(tmp_path)) as cpu:
            assert cpu == victim_cpu


def test_a_lock_folder_that_cannot_be_made_runs_unpinned(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where the folder should be: makedirs fails
    before = os.sched_getaffinity(0)
    with pinned_cpu(True, locks=str(blocker / "locks")) as cpu:
        assert cpu is None
        assert os.sched_getaffinity(0) == before
