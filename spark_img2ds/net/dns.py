"""Host name lookups, cached per Python worker: bounded in entries and in age, failures included.

Each lookup without a cache costs a thread a round trip to the resolver (tens of ms on the
web) and two queries (A and AAAA); a URL list meets the same hosts again and again, and a
name that does not exist is asked for with every URL that names it. The system resolver
(getaddrinfo, which honours /etc/hosts, search domains and nsswitch) does not report TTLs,
so answers are kept for a fixed time, as the JVM does by default: POSITIVE_SECONDS for
addresses, NEGATIVE_SECONDS for names that do not exist. Temporary failures are not kept.
Threads looking up the same name at once share one lookup.

The address policy still checks every address at connect time (net/connect.py): a cached
answer is only ever a list of addresses to check, and keeping it also means a name cannot
rebind between two requests of the same minute.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable

POSITIVE_SECONDS = 30.0  # the JVM's networkaddress.cache.ttl default
NEGATIVE_SECONDS = 10.0  # the JVM's networkaddress.cache.negative.ttl default
MAX_NAMES = 10_000  # answers kept at once; the least recently used go first
# getaddrinfo errors that mean "no such name" (kept) rather than "try again" (not kept)
NEGATIVE_ERRORS = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name)
)

Addresses = list[tuple]  # getaddrinfo's (family, type, proto, canonname, sockaddr) tuples
Lookup = Callable[[str, int], Addresses]


def system_lookup(host: str, port: int) -> Addresses:
    """The system resolver's TCP addresses for host:port."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


class _Pending:
    """A lookup in progress that other threads wait for."""

    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Addresses | None = None
        self.error: socket.gaierror | None = None


class Resolver:
    """A thread-safe cache in front of a lookup function (the system resolver by default)."""

    def __init__(
        self,
        lookup: Lookup = system_lookup,
        positive: float = POSITIVE_SECONDS,
        negative: float = NEGATIVE_SECONDS,
        max_names: int = MAX_NAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.positive = positive
        self.negative = negative
        self.max_names = max_names
        self.clock = clock
        self._lock = threading.Lock()
        # (host, port) -> (expires, addresses or the gaierror to raise again)
        self._answers: collections.OrderedDict[tuple[str, int], tuple[float, Addresses | socket.gaierror]] = (
            collections.OrderedDict()
        )
        self._pending: dict[tuple[str, int], _Pending] = {}
        self.lookups = 0  # lookups really made (the rest were answered from the cache or shared)

    def resolve(self, host: str, port: int) -> Addresses:
        """host's addresses for port; socket.gaierror as the system resolver raises it."""
        key = (host.lower(), port)
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                expires, answer = found
                if self.clock() < expires:
                    self._answers.move_to_end(key)
                    if isinstance(answer, socket.gaierror):
                        raise socket.gaierror(*answer.args)
                    return list(answer)
                del self._answers[key]
            pending = self._pending.get(key)
            leader = pending is None
            if leader:
                pending = self._pending[key] = _Pending()
                self.lookups += 1
        assert pending is not None
        if not leader:
            pending.done.wait()
        else:
            self._lead(key, host, port, pending)
        if pending.error is not None:
            raise socket.gaierror(*pending.error.args)
        return list(pending.result or ())

    def _lead(self, key: tuple[str, int], host: str, port: int, pending: _Pending) -> None:
        """Make the lookup for every thread waiting on key, and keep its answer."""
        keep: Addresses | socket.gaierror | None = None
        age = 0.0
        try:
            pending.result = self.lookup(host, port)
            keep, age = pending.result, self.positive
        except socket.gaierror as err:
            pending.error = err
            if err.errno in NEGATIVE_ERRORS:
                keep, age = err, self.negative
        except BaseException as err:  # not a resolver answer: the waiters see a temporary failure
            pending.error = socket.gaierror(getattr(socket, "EAI_AGAIN", -3), f"lookup failed: {type(err).__name__}")
            raise
        finally:
            with self._lock:
                del self._pending[key]
                if keep is not None and age > 0 and self.max_names > 0:
                    self._answers[key] = (self.clock() + age, keep)
                    self._answers.move_to_end(key)
                    while len(self._answers) > self.max_names:
                        self._answers.popitem(last=False)
            pending.done.set()

    def __len__(self) -> int:
        return len(self._answers)


RESOLVER = Resolver()
