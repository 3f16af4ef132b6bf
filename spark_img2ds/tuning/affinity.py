"""Pin each running shard task to a CPU of its own.

A Python worker runs many download threads around one GIL. When the kernel
spreads them over every core, each GIL hand-off wakes a thread on another core
and the image work keeps losing its caches: measured on 2 cores, two unpinned
workers spent 4.7 ms of CPU per image where the same two pinned to a core each
spent 3.8-4.1. Tasks claim a CPU through an advisory file lock, so concurrent
tasks of every executor on the host get distinct CPUs; a task that finds none
free runs unpinned. The kernel drops the lock if the worker dies.

Tasks of one run label the CPUs they claim with the run's tag. When a sibling
has finished and its CPU sits idle (the last tasks of a run rarely end
together), a task spreads its threads over that CPU too, and narrows back as
soon as another task claims it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator

LOCK_DIR_NAME = "spark_img2ds-cpus"
SPARE_CHECK_SECONDS = 0.25
TAG_BYTES = 256


def lock_dir() -> str:
    """Where the per-CPU lock files live: one folder per host, shared by every executor."""
    return os.path.join(tempfile.gettempdir(), LOCK_DIR_NAME)


def _try_lock(path: str, create: bool = True) -> int | None:
    """An open fd holding the file's lock, or None if another holds it; raises OSError if it cannot be opened."""
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _lock_path(locks: str, cpu: int) -> str:
    return os.path.join(locks, f"cpu{cpu}.lock")


def _label(fd: int, tag: str | None) -> None:
    """Write the claiming run's tag into its lock file (empty without one)."""
    data = (tag or "").encode()[:TAG_BYTES]
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def is_spare(path: str, tag: str) -> bool:
    """Whether the CPU of this lock file is claimed by no task and was last claimed by the run tagged tag.

    Looking takes the lock for an instant; a task claiming the CPU in that instant runs unpinned.
    """
    try:
        fd = _try_lock(path, create=False)
    except OSError:
        return False  # never claimed on this host
    if fd is None:
        return False
    try:
        return os.pread(fd, TAG_BYTES + 1, 0) == tag.encode()[:TAG_BYTES]
    finally:
        os.close(fd)  # also drops the lock taken to look


def _threads_on(mask: set[int]) -> list[int]:
    """Native ids of this process's threads whose CPU mask is exactly mask."""
    out = []
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [threading.get_native_id()]
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread may have ended meanwhile
            if os.sched_getaffinity(tid) == mask:
                out.append(tid)
    return out


class SpareCpus(threading.Thread):
    """Spreads the task's threads over CPUs that sibling tasks of its run have left idle.

    Every `every` seconds it looks at the other CPUs' locks; the threads pinned to the
    current mask move to own CPU + the spare ones. Threads with another mask (not
    the task's) are left alone. Only CPUs the run itself was given are borrowed,
    so a run with fewer processes than cores stays on as many cores.
    """

    def __init__(self, own: int, others: list[int], locks: str, tag: str, every: float) -> None:
        super().__init__(name="img2ds-spare-cpus", daemon=True)
        self.own, self.others, self.locks, self.tag, self.every = own, others, locks, tag, every
        self.mask = {own}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            want = {self.own} | {c for c in self.others if is_spare(_lock_path(self.locks, c), self.tag)}
            if want != self.mask:
                for tid in _threads_on(self.mask):
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(tid, want)
                self.mask = want

    def stop(self) -> None:
        self._done.set()
        self.join()


@contextlib.contextmanager
def pinned_cpu(
    enabled: bool = True, locks: str | None = None, tag: str | None = None, every: float = SPARE_CHECK_SECONDS
) -> Iterator[int | None]:
    """Run the block on one CPU not claimed by another task; yields the CPU, or None when unpinned.

    Only the calling thread is pinned, and the threads it starts inside the block. With
    a tag (one per run), the claim is labelled with it and the block's threads also use
    CPUs that tasks with the same tag claimed and released (see SpareCpus).
    """
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    locks = locks or lock_dir()
    try:
        allowed = sorted(os.sched_getaffinity(0))
        os.makedirs(locks, exist_ok=True)
    except OSError:
        yield None
        return
    if len(allowed) < 2:
        yield None
        return
    cpu, fd = None, None
    for candidate in allowed:
        try:
            fd = _try_lock(_lock_path(locks, candidate))
        except OSError:
            fd = None
        if fd is not None:
            cpu = candidate
            break
    if fd is None:
        yield None
        return
    spare = None
    try:
        os.sched_setaffinity(0, {cpu})
        with contextlib.suppress(OSError):
            _label(fd, tag)
        if tag:
            spare = SpareCpus(cpu, [c for c in allowed if c != cpu], locks, tag, every)
            spare.start()
        yield cpu
    finally:
        if spare is not None:
            spare.stop()
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, allowed)
        os.close(fd)
