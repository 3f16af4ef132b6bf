"""CPU pinning of shard tasks: distinct CPUs for concurrent tasks, released on exit or death,
and CPUs that finished tasks of the same run left idle, borrowed until claimed again.

Concurrent tasks are separate Python workers, so the other claimants here are real processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from spark_img2ds.tuning.affinity import is_spare, pinned_cpu

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
pytestmark = pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs at least 2 CPUs")
HOLDER = (
    "import os, sys, time\n"
    "from spark_img2ds.tuning.affinity import pinned_cpu\n"
    "os.sched_setaffinity(0, [int(c) for c in sys.argv[3].split(',')])  # not the pin of the test's thread\n"
    "with pinned_cpu(True, sys.argv[1], tag=sys.argv[2] or None) as cpu:\n"
    "    print(cpu, sorted(os.sched_getaffinity(0)), flush=True)\n"
    "    time.sleep(120)\n"
)


@contextlib.contextmanager
def holders(locks, n: int, tag: str = ""):
    """n worker-like processes, each holding a claim labelled tag; yields [(process, cpu, mask)]."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(locks), tag, ",".join(map(str, CPUS))], stdout=subprocess.PIPE, text=True
        )
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


def _wait_for_mask(want: set[int], limit: float = 5.0) -> set[int]:
    deadline = time.monotonic() + limit
    while (mask := os.sched_getaffinity(0)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return mask


def test_a_cpu_a_finished_sibling_left_is_borrowed_until_claimed_again(tmp_path):
    box = {}
    started, seen = threading.Event(), threading.Event()

    def pool_thread():  # started inside the block, like the download threads
        started.set()
        seen.wait(10)
        box["mask"] = os.sched_getaffinity(0)

    with holders(tmp_path, len(CPUS) - 1, tag="run-1") as held:
        victim, victim_cpu, _ = held[0]
        with pinned_cpu(True, str(tmp_path), tag="run-1", every=0.02) as cpu:
            t = threading.Thread(target=pool_thread)
            t.start()
            started.wait(10)
            assert os.sched_getaffinity(0) == {cpu}
            victim.kill()
            victim.wait(10)
            assert _wait_for_mask({cpu, victim_cpu}) == {cpu, victim_cpu}
            seen.set()
            t.join(10)
            assert box["mask"] == {cpu, victim_cpu}
            with holders(tmp_path, 1) as [(_, newcomer, _)]:
                assert newcomer == victim_cpu
                assert _wait_for_mask({cpu}) == {cpu}
    assert sorted(os.sched_getaffinity(0)) == CPUS


def test_cpus_another_run_left_idle_are_not_borrowed(tmp_path):
    with holders(tmp_path, len(CPUS) - 1, tag="another-run") as held:
        with pinned_cpu(True, str(tmp_path), tag="run-1", every=0.02) as cpu:
            for other, _, _ in held:
                other.kill()
                other.wait(10)
            time.sleep(0.3)  # some fifteen looks at the other CPUs, now free but labelled by another run
            assert os.sched_getaffinity(0) == {cpu}
            with holders(tmp_path, 1, tag="run-1") as [(sibling, sibling_cpu, _)]:
                sibling.kill()
                sibling.wait(10)
            assert _wait_for_mask({cpu, sibling_cpu}) == {cpu, sibling_cpu}


def test_is_spare_reads_the_lock_and_the_label(tmp_path):
    path = str(tmp_path / "cpu0.lock")
    assert not is_spare(path, "run-1")  # no such file: never claimed
    with open(path, "w") as f:
        f.write("run-2")
    assert not is_spare(path, "run-1")
    with open(path, "w") as f:
        f.write("run-1")
    assert is_spare(path, "run-1")
    with open(path) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert not is_spare(path, "run-1")
