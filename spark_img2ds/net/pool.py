"""Kept-alive connections of one task, shared by its download threads, by server."""

from __future__ import annotations

import collections
import resource
import threading

from spark_img2ds.net import http1

# Kept alive per Fetcher (a task), shared by its threads; the least recently used servers' are closed
# first. 512 closed a third of the connections of a 534-host list again (TLS connections per URL
# 0.19 -> 0.14 at 2048); each is a file descriptor, so a low RLIMIT_NOFILE lowers it (idle_limit).
MAX_IDLE_CONNECTIONS = 2048


def idle_limit(open_files: int) -> int:
    """Idle connections a task keeps: MAX_IDLE_CONNECTIONS, or a quarter of its process's file descriptors (pure)."""
    if open_files < 0:  # RLIM_INFINITY
        return MAX_IDLE_CONNECTIONS
    return max(16, min(MAX_IDLE_CONNECTIONS, open_files // 4))


class IdlePool:
    """The kept-alive connections of one Fetcher, shared by its threads, by server.

    A connection is taken out while a thread uses it and given back after a full response,
    so a thread meets the connections the others left: on lists of many hosts a GET on a
    kept-alive HTTPS connection costs a quarter of one on a new connection
    (bench/tls_handshakes.py). Beyond `limit` idle connections, the servers used least
    recently lose theirs first.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit if limit is not None else idle_limit(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        self._idle: collections.OrderedDict[tuple, list[http1.Connection]] = collections.OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def take(self, key: tuple) -> http1.Connection | None:
        with self._lock:
            conns = self._idle.get(key)
            if not conns:
                return None
            conn = conns.pop()  # the most recently used: the likeliest to be still open
            self._count -= 1
            if not conns:
                del self._idle[key]
            return conn

    def give(self, key: tuple, conn: http1.Connection) -> None:
        closing = []
        with self._lock:
            self._idle.setdefault(key, []).append(conn)
            self._idle.move_to_end(key)
            self._count += 1
            while self._count > self.limit:
                oldest, conns = next(iter(self._idle.items()))
                closing.append(conns.pop(0))
                self._count -= 1
                if not conns:
                    del self._idle[oldest]
        for old in closing:
            old.close()

    def __len__(self) -> int:
        return self._count
