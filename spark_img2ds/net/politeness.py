"""Politeness per host, shared by the download threads of one task.

At most `limit` requests to one host are in flight at once, and a host that answers
429 or 503 gets no new request for a cool-down that doubles with each such answer in a
row (from COOLDOWN_BASE seconds), or for its Retry-After when longer, never longer than
`max_cooldown` (the fetcher passes its timeout: Retry-After stays bounded by one attempt's
deadline); a success halves the count again. A request waits for its host at most
`wait_limit` seconds, then fails with a message that says why (HostBusy, a transient error).

A host whose connections time out UNANSWERED_LIMIT times in a row (no connection made in
between) is not answering: its other requests fail at once for a while (HostDown, transient)
instead of holding a download slot for the connect timeout each, as crawlers retire dead
hosts' queues. The pause starts at SKIP_BASE seconds and doubles with each further timeout
in a row, up to SKIP_MAX; after it, requests go out again, and one connection made clears it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

COOLDOWN_BASE = 1.0
COOLDOWN_MAX = 60.0
MAX_TRACKED_HOSTS = 10_000  # cool-downs remembered at once; expired ones are dropped first
UNANSWERED_LIMIT = 2  # connection timeouts in a row after which a host's requests are skipped
SKIP_BASE = 60.0
SKIP_MAX = 600.0
HOST_DOWN_MESSAGE = "host not answering: skipped after its connections timed out"


class HostBusy(Exception):
    """No slot at the host within the wait limit (kept busy, or cooling down after 429/503)."""


class HostDown(HostBusy):
    """The host's connections timed out UNANSWERED_LIMIT times in a row: its requests are skipped for now."""


def cooldown(strikes: int, retry_after: float | None, cap: float = COOLDOWN_MAX) -> float:
    """Seconds without new requests after the strikes-th 429/503 in a row (pure)."""
    grown = COOLDOWN_BASE * (2 ** min(max(0, strikes - 1), 16))
    return min(max(grown, retry_after or 0.0), cap)


def skip_seconds(timeouts: int) -> float:
    """How long a host is skipped after its timeouts-th connection timeout in a row; 0: not yet (pure)."""
    if timeouts < UNANSWERED_LIMIT:
        return 0.0
    return min(SKIP_BASE * 2 ** min(timeouts - UNANSWERED_LIMIT, 16), SKIP_MAX)


def _forget_past(counts: dict[str, int], until: dict[str, float], now: float) -> None:
    """Drop the hosts whose pause (cool-down or skip) is over, or never began, from both maps."""
    for host in [h for h in counts.keys() | until.keys() if until.get(h, 0.0) <= now]:
        counts.pop(host, None)
        until.pop(host, None)


class HostGate:
    """Per-host concurrency limit and cool-downs (limit 0: no limit, cool-downs still apply)."""

    def __init__(
        self, limit: int, max_cooldown: float = COOLDOWN_MAX, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.max_cooldown = max_cooldown
        self.clock = clock
        self._lock = threading.Lock()
        # One condition per host with waiters, all on _lock: a release wakes one waiter of its
        # own host, not every waiting thread (a task's threads queue on one large host all day).
        self._conds: dict[str, threading.Condition] = {}
        self._waiting: Counter[str] = Counter()
        self._active: Counter[str] = Counter()
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}
        self._timeouts: dict[str, int] = {}  # connection timeouts in a row, per host
        self._down: dict[str, float] = {}  # hosts skipped, until when
        self.delayed = 0  # requests that waited for their host
        self.throttled: Counter[str] = Counter()  # cool-downs started or extended, per host
        self.skipped = 0  # requests failed at once because their host was not answering

    def _free(self, host: str, now: float) -> bool:
        return (not self.limit or self._active[host] < self.limit) and now >= self._until.get(host, 0.0)

    @contextlib.contextmanager
    def slot(self, host: str, wait_limit: float) -> Iterator[bool]:
        """Hold one of the host's slots for the block; yields whether the request had to wait."""
        with self._lock:
            now = self.clock()
            if self._down and now < self._down.get(host, 0.0):
                self.skipped += 1
                raise HostDown(HOST_DOWN_MESSAGE)
            deadline, waited = now + wait_limit, False
            while not self._free(host, now):
                if now >= deadline:
                    if now < self._until.get(host, 0.0):
                        raise HostBusy(
                            f"host asked to slow down (HTTP 429/503): still cooling down after {wait_limit:g}s"
                        )
                    raise HostBusy(f"host busy: no free connection of max_connections_per_host in {wait_limit:g}s")
                waited = True
                until = self._until.get(host, 0.0)
                wake = min(deadline, max(until, now + 0.05)) if now < until else deadline
                self._wait(host, max(0.001, wake - now))
                now = self.clock()
            self._active[host] += 1
            if waited:
                self.delayed += 1
        try:
            yield waited
        finally:
            with self._lock:
                self._active[host] -= 1
                if self._active[host] <= 0:
                    del self._active[host]
                cond = self._conds.get(host)
                if cond is not None:
                    cond.notify()

    def _wait(self, host: str, seconds: float) -> None:
        """Wait (holding _lock) until a slot of host is given back or seconds pass."""
        cond = self._conds.get(host)
        if cond is None:
            cond = self._conds[host] = threading.Condition(self._lock)
        self._waiting[host] += 1
        try:
            cond.wait(seconds)
        finally:
            self._waiting[host] -= 1
            if self._waiting[host] <= 0:
                del self._waiting[host]
                del self._conds[host]

    def throttle(self, host: str, retry_after: float | None) -> float:
        """A 429 or 503 from host: hold its new requests back; returns the cool-down in seconds."""
        with self._lock:
            now = self.clock()
            if len(self._until) >= MAX_TRACKED_HOSTS:
                _forget_past(self._strikes, self._until, now)
            strikes = self._strikes.get(host, 0) + 1
            wait = cooldown(strikes, retry_after, self.max_cooldown)
            self._strikes[host] = strikes
            self._until[host] = max(self._until.get(host, 0.0), now + wait)
            self.throttled[host] += 1
            return wait

    def relieve(self, host: str) -> None:
        """A success from host: its next 429 starts a shorter cool-down."""
        if host not in self._strikes:
            return
        with self._lock:
            strikes = self._strikes.get(host, 0)
            if strikes > 1:
                self._strikes[host] = strikes // 2
            elif strikes:
                del self._strikes[host]

    def unanswered(self, host: str) -> float:
        """A connection to host timed out; returns for how long its requests are now skipped (0: not skipped)."""
        with self._lock:
            now = self.clock()
            if len(self._timeouts) >= MAX_TRACKED_HOSTS:
                _forget_past(self._timeouts, self._down, now)
            count = self._timeouts.get(host, 0) + 1
            self._timeouts[host] = count
            pause = skip_seconds(count)
            if pause:
                self._down[host] = now + pause
            return pause

    def answered(self, host: str) -> None:
        """A connection to host was made: it is answering again."""
        if host in self._timeouts:
            with self._lock:
                self._timeouts.pop(host, None)
                self._down.pop(host, None)
