"""Heartbeats: a running shard's entry under _running/, written by its worker, read by the driver.

An entry says where the shard runs and how far it got. The driver sums them for
progress between task ends and lists them when no shard has finished for a while.
A committed shard's entry stays, marked committed, until its task ends: the driver
counts it until the task's accumulators, sent when the task ends, take over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

from spark_img2ds.dataset import storage
from spark_img2ds.dataset.layout import RUNNING_DIR, running_name

HEARTBEAT_SECONDS = 15.0


class Heartbeat:
    """The writing side, one per shard being written."""

    def __init__(self, fs, root: str, name: str, total: int, every: float = HEARTBEAT_SECONDS) -> None:
        self.fs, self.path, self.every = fs, storage.join(root, running_name(name)), every
        self.info = {"shard": name, "host": socket.gethostname(), "pid": os.getpid(), "total": total}
        self.info["started"] = time.time()
        self.last = 0.0

    def update(self, done: int, force: bool = False, committed: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            info = {**self.info, "done": done, "updated": time.time(), "committed": committed}
            with contextlib.suppress(Exception):  # a report, never a reason to fail the shard
                storage.write_json(self.fs, self.path, info)

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(self.path)


def read_heartbeats(fs, root: str) -> list[dict]:
    """The entries under _running/, in shard order."""
    folder = storage.join(root, RUNNING_DIR)
    fs.invalidate_cache(folder)
    try:
        paths = [p for p in fs.ls(folder, detail=False) if p.endswith(".json")]
    except FileNotFoundError:
        return []
    return [info for _, info in sorted(storage.read_json_files(fs, paths).items()) if isinstance(info, dict)]


def running_report(fs, root: str, now: float) -> list[str]:
    """One line per shard with a heartbeat under _running/: progress, where, and how fresh."""
    lines = []
    for info in read_heartbeats(fs, root):
        if info.get("committed"):
            continue
        quiet = now - float(info.get("updated", now))
        lines.append(
            f"shard {info.get('shard')}: {info.get('done')}/{info.get('total')} samples on "
            f"{info.get('host')} (pid {info.get('pid')}), running {now - float(info.get('started', now)):.0f}s, "
            f"last heartbeat {quiet:.0f}s ago"
        )
    return lines


def heartbeat_progress(fs, root: str) -> tuple[int, int]:
    """(samples, committed shards) that running tasks have reported in heartbeats and not yet in accumulators."""
    beats = read_heartbeats(fs, root)
    return sum(int(b.get("done") or 0) for b in beats), sum(1 for b in beats if b.get("committed"))
