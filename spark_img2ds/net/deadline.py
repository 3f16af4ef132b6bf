"""Total deadlines for download attempts.

Socket timeouts bound each socket operation only; a server that drips its headers or
body a byte at a time would defeat them, so one reaper thread per process shuts down
the socket of any attempt that outlives its total deadline.
"""

from __future__ import annotations

import collections
import socket
import threading
import time

from spark_img2ds.net import http1

REAPER_GRACE = 0.25


class Attempt:
    """One request attempt: its deadline and the connection it is currently using."""

    __slots__ = ("deadline", "conn", "expired", "done")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: http1.Connection | None = None
        self.expired = False
        self.done = False

    def bind(self, conn: http1.Connection) -> None:
        self.conn = conn
        if self.expired:
            raise TimeoutError("deadline passed")

    def cut(self) -> None:
        """Wake the owning thread out of any blocking socket call."""
        conn = self.conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                # socket.socket's own shutdown: SSLSocket's would drop its state under the reader.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


class Reaper:
    """A daemon thread that cuts the connection of attempts past their deadline.

    Lock-free on the hot path: attempts are appended to a deque (atomic in CPython) and
    the reaper looks at them a few times a second. One process runs one job's config, so
    deadlines arrive nearly in order and the reaper only inspects the oldest ones.
    """

    TICK = 0.05

    def __init__(self) -> None:
        self._queue: collections.deque[Attempt] = collections.deque()
        self._expired: list[Attempt] = []
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, attempt: Attempt) -> None:
        self._queue.append(attempt)
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="img2ds-deadline-reaper", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            queue = self._queue
            while queue:
                head = queue[0]
                if head.done:
                    queue.popleft()
                elif head.deadline + REAPER_GRACE <= now:
                    queue.popleft()
                    head.expired = True
                    self._expired.append(head)
                else:
                    break
            # Cut again until the owner notices, in case it was between connections when first cut.
            self._expired = [a for a in self._expired if not a.done]
            for attempt in self._expired:
                attempt.cut()


REAPER = Reaper()
