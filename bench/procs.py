"""Processes the benchmark starts, and what /proc says about them.

Every long-lived process (servers, the tools under test) is started through
``REGISTRY`` in its own session, so that it and everything it forks (the JVM,
PySpark workers, nginx workers) can be ended by process group at exit, even on
Ctrl-C or an exception. Nothing here touches processes the benchmark did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


class ProcessRegistry:
    """Starts processes in new sessions and ends their process groups on request."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def pids(self) -> set[int]:
        with self._lock:
            return {p.pid for p in self._procs}

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        with self._lock:
            self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it is still there after grace seconds."""
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # Children (e.g. PySpark workers) may outlive their parent: end the whole group.
        _signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        with self._lock:
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in reversed(procs):
            self.stop(proc, grace=3.0)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group id is the pid: start_new_session=True
    except (ProcessLookupError, PermissionError):
        pass


REGISTRY = ProcessRegistry()


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/pid/stat after the command name (index 0 is the state)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    return text[text.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by one live process (0 if it is gone)."""
    fields = stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """Live descendants of root (not root itself) and their parent ids, from /proc."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        parent = todo.pop()
        for child in children.get(parent, []):
            if child not in out:
                out[child] = parent
                todo.append(child)
    return out


def cmdline(pid: int) -> str:
    text = _read(f"/proc/{pid}/cmdline")
    return text.replace("\0", " ").strip() if text else ""


def peak_rss_kb(pid: int) -> int:
    """The kernel's high-water mark of resident memory (VmHWM) of a live process, in KiB."""
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    first = (_read("/proc/stat") or "cpu 0 0 0 0").splitlines()[0].split()[1:]
    ticks = [int(x) for x in first[:8]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


def group_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of some processes and all their live descendants."""
    seen: set[int] = set()
    for pid in pids:
        seen.add(pid)
        seen.update(descendants(pid))
    return sum(cpu_seconds(p) for p in seen)


@dataclass
class Seen:
    start: str  # start time in clock ticks since boot: with the pid, identifies the process
    cmd: str
    rss: bool  # its peak RSS is reported
    unreaped: bool  # its CPU time has to be read here: the kernel will not report it to us


@dataclass
class TreeSampler:
    """Polls the process tree under root: peak RSS of some processes, CPU time of others.

    Peak RSS is the kernel's own high-water mark (VmHWM), so polling only has to read it
    before the process exits. CPU time is normally counted exactly by reaping (see
    become_subreaper); but a parent that ignores SIGCHLD (PySpark's daemon does) makes the
    kernel discard its children's usage, so for those processes the last value read here
    is used (what they spend after the last poll is missed).
    Processes are followed after they leave the tree (re-parented), until they end.
    """

    root: int
    rss_match: Callable[[str], bool]
    unreaped_match: Callable[[str, str], bool] | None = None  # (command, parent's command)
    interval: float = 0.5
    peaks_kb: dict[int, int] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    seen: dict[int, Seen] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        tree = descendants(self.root)
        # Read every command line on every poll: a process seen between fork and exec (a JVM
        # starting the PySpark daemon) shows its parent's command line, and exec keeps its
        # pid and start time. Classified once, it kept the wrong kind for good.
        cmds = {pid: cmdline(pid) for pid in tree}
        for pid, parent in tree.items():
            fields = stat_fields(pid)
            cmd = cmds[pid]
            if not fields or not cmd:  # an exiting process (a zombie) has no command line: keep its kind
                continue
            known = self.seen.get(pid)
            parent_cmd = cmds.get(parent) or cmdline(parent)
            unreaped = bool(self.unreaped_match and self.unreaped_match(cmd, parent_cmd))
            if known is not None and known.start == fields[19] and known.cmd == cmd and known.unreaped == unreaped:
                continue
            self.seen[pid] = Seen(fields[19], cmd, self.rss_match(cmd), unreaped)
        for pid, info in self.seen.items():
            fields = stat_fields(pid)
            if not fields or fields[19] != info.start:
                continue
            if info.rss:
                kb = peak_rss_kb(pid)
                if kb > self.peaks_kb.get(pid, 0):
                    self.peaks_kb[pid] = kb
            if info.unreaped:
                self.cpu_s[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> set[int]:
        """The followed processes that still exist (the same process, not a reused pid)."""
        out = set()
        for pid, info in self.seen.items():
            fields = stat_fields(pid)
            if fields and fields[19] == info.start and _running(pid):
                out.add(pid)
        return out

    def kill_leftovers(self) -> list[str]:
        """SIGKILL the followed processes still running (e.g. a PySpark daemon in its own group)."""
        killed = []
        for pid in self.alive():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(self.seen[pid].cmd[:80])
            except ProcessLookupError:
                pass
        return killed

    @property
    def max_mb(self) -> float | None:
        return round(max(self.peaks_kb.values()) / 1024, 1) if self.peaks_kb else None

    def unreaped_cpu_s(self, reaped_by_us: set[int] = frozenset()) -> float:
        """CPU read from /proc for processes whose usage no wait() passed on to us.

        A forked PySpark worker whose daemon ended first is re-parented to us and reaped
        here: its usage is then in our RUSAGE_CHILDREN and must not be counted twice.
        """
        return sum(v for pid, v in self.cpu_s.items() if pid not in reaped_by_us)


def become_subreaper() -> bool:
    """Make orphaned descendants (e.g. a JVM whose Python parent exited) our children.

    Then their CPU time is counted in RUSAGE_CHILDREN once reaped, instead of going to init.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _running(pid: int) -> bool:
    """False once a process is gone, or is a zombie that its own (live) parent will reap.

    A zombie child of ours counts as running until we reap it: a thread-group leader shows
    "Z" while its other threads (a JVM shutting down) still run, and cannot be reaped yet.
    """
    fields = stat_fields(pid)
    if not fields or fields[0] == "X":
        return False
    return fields[0] != "Z" or int(fields[1]) == os.getpid()


def reap_zombies(protected: set[int], reaped: set[int] | None = None) -> None:
    """Reap every exited child of ours, except the protected ones (left to their Popen).

    reaped, if given, collects their pids: their CPU time is now in our RUSAGE_CHILDREN.
    """
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in protected:
            return
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return
        if reaped is not None:
            reaped.add(info.si_pid)


def wait_gone(
    alive: Callable[[], set[int]], protected: set[int], timeout: float, reaped: set[int] | None = None
) -> set[int]:
    """Wait for processes to end, reaping those re-parented to us; returns the ones still alive."""
    deadline = time.monotonic() + timeout
    while True:
        reap_zombies(protected, reaped)
        left = alive()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def raise_interrupt(signum, frame) -> None:
    """A signal handler that turns SIGTERM/SIGHUP into KeyboardInterrupt, so `finally` blocks stop what was started."""
    raise KeyboardInterrupt
