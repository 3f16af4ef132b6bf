"""The shard watchdog: a shard that stops making progress must not hang its Spark task.

Every download has its own deadline, so a healthy shard finishes a sample every few
seconds. When a shard goes ``limit`` seconds without one, the watchdog marks it stalled:
the shard loop notices, abandons the shard (its files are discarded) and the driver
retries it. If the loop itself is stuck in I/O and does not come back within another
``limit``, the watchdog ends the Python worker, which Spark sees as a failed task and
retries (``spark.task.maxFailures``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

EXIT_CODE = 75  # EX_TEMPFAIL: the task is worth retrying


class ShardStalled(Exception):
    """Raised in the shard loop when the watchdog has given up on the shard."""


def verdict(idle: float, limit: float, stalled: bool) -> str:
    """What to do about a shard idle for `idle` seconds: "ok", "stall" or "exit"."""
    if idle <= limit:
        return "ok"
    if not stalled:
        return "stall"
    return "exit" if idle > 2 * limit else "ok"


class ShardWatchdog:
    """Watches the shard a partition worker is writing; one per Python worker task."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._shard: str | None = None
        self._last = time.monotonic()
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="img2ds-watchdog", daemon=True)

    def __enter__(self) -> ShardWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def begin(self, shard: str) -> None:
        self._stalled.clear()
        self._last = time.monotonic()
        self._shard = shard

    def beat(self) -> None:
        self._last = time.monotonic()

    def end(self) -> None:
        self._shard = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (waiting for the next input rows) is not held against the shard."""
        shard = self._shard
        self._shard = None
        try:
            yield
        finally:
            self._last = time.monotonic()
            self._shard = shard

    def check(self) -> None:
        """Raise ShardStalled if the watchdog gave up on the current shard."""
        if self._stalled.is_set():
            raise ShardStalled(f"shard made no progress for {self.limit:g}s (stall_timeout); abandoned for a retry")

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.limit / 4)):
            shard = self._shard
            if shard is None:
                continue
            action = verdict(time.monotonic() - self._last, self.limit, self._stalled.is_set())
            if action == "stall":
                self._stalled.set()
                print(f"spark_img2ds: shard {shard} stalled for {self.limit:g}s; abandoning it", file=sys.stderr)
            elif action == "exit":
                print(
                    f"spark_img2ds: shard {shard} is stuck and did not stop; ending this Python worker "
                    "so that Spark retries the task",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(EXIT_CODE)
