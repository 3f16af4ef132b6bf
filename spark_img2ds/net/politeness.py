"""Politeness per host, shared by the download threads of one task.

At most `limit` requests to one host are in flight at once, and a host that answers
429 or 503 gets no new request for a cool-down that doubles with each such answer in a
row (from COOLDOWN_BASE seconds), or for its Retry-After when longer, never longer than
`max_cooldown` (the fetcher passes its timeout: Retry-After stays bounded by one attempt's
deadline); a success halves the count again. A request waits for its host at most
`wait_limit` seconds, then fails with a message that says why (HostBusy, a transient error).
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


class HostBusy(Exception):
    """No slot at the host within the wait limit (kept busy, or cooling down after 429/503)."""


def cooldown(strikes: int, retry_after: float | None, cap: float = COOLDOWN_MAX) -> float:
    """Seconds without new requests after the strikes-th 429/503 in a row (pure)."""
    grown = COOLDOWN_BASE * (2 ** min(max(0, strikes - 1), 16))
    return min(max(grown, retry_after or 0.0), cap)


class HostGate:
    """Per-host concurrency limit and cool-downs (limit 0: no limit, cool-downs still apply)."""

    def __init__(
        self, limit: int, max_cooldown: float = COOLDOWN_MAX, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.max_cooldown = max_cooldown
        self.clock = clock
        self._cond = threading.Condition()
        self._active: Counter[str] = Counter()
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}
        self.delayed = 0  # requests that waited for their host
        self.throttled: Counter[str] = Counter()  # cool-downs started or extended, per host

    def _free(self, host: str, now: float) -> bool:
        return (not self.limit or self._active[host] < self.limit) and now >= self._until.get(host, 0.0)

    @contextlib.contextmanager
    def slot(self, host: str, wait_limit: float) -> Iterator[bool]:
        """Hold one of the host's slots for the block; yields whether the request had to wait."""
        with self._cond:
            now = self.clock()
            deadline, waited = now + wait_limit, False
            while not self._free(host, now):
                if now >= deadline:
                    if now < self._until.get(host, 0.0):
                        raise HostBusy(
                            f"host asked to slow down (HTTP 429/503): still cooling down after {wait_limit:g}s"
                        )  # noqa: E501
                    raise HostBusy(f"host busy: no free connection of max_connections_per_host in {wait_limit:g}s")
                waited = True
                wake = min(deadline, max(self._until.get(host, 0.0), now + 0.05))
                self._cond.wait(max(0.001, wake - now))
                now = self.clock()
            self._active[host] += 1
            if waited:
                self.delayed += 1
        try:
            yield waited
        finally:
            with self._cond:
                self._active[host] -= 1
                if self._active[host] <= 0:
                    del self._active[host]
                self._cond.notify_all()

    def throttle(self, host: str, retry_after: float | None) -> float:
        """A 429 or 503 from host: hold its new requests back; returns the cool-down in seconds."""
        with self._cond:
            now = self.clock()
            if len(self._until) >= MAX_TRACKED_HOSTS:
                for name in [h for h, t in self._until.items() if t <= now]:
                    self._until.pop(name, None)
                    self._strikes.pop(name, None)
            strikes = self._strikes.get(host, 0) + 1
            wait = cooldown(strikes, retry_after, self.max_cooldown)
            self._strikes[host] = strikes
            self._until[host] = max(self._until.get(host, 0.0), now + wait)
            self.throttled[host] += 1
            return wait

    def relieve(self, host: str) -> None:
        """A success from host: its next 429 starts a shorter cool-down."""
        with self._cond:
            strikes = self._strikes.get(host, 0)
            if strikes > 1:
                self._strikes[host] = strikes // 2
            elif strikes:
                del self._strikes[host]
