"""Downloading one URL: pooled keep-alive connections, a total deadline, retries, opt-out.

The hot path uses urllib3 directly (what requests runs on, without its per-request
overhead). Each thread keeps its own PoolManager, so a connection is never shared.
Socket timeouts bound each socket operation only; a server that drips its headers or
body a byte at a time would defeat them, so one reaper thread per process shuts down
the socket of any attempt that outlives its total deadline.

Every failure becomes a FetchError whose message is short and free of the URL,
so that the per-error counts in the run summary group alike failures together.
"""

from __future__ import annotations

import collections
import random
import socket
import threading
import time
from collections.abc import Iterable
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    LocationValueError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import parse_url

try:
    import certifi

    CA_BUNDLE: str | None = certifi.where()
except ImportError:  # pragma: no cover - requests always brings certifi
    CA_BUNDLE = None

BASE_USER_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
PROJECT_URL = "https://github.com/rom1504/img2dataset"
CHUNK = 1 << 16
MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
OPT_OUT_MESSAGE = "Use of image disallowed by X-Robots-Tag directive"
REAPER_GRACE = 0.25


class FetchError(Exception):
    """A download that did not give image bytes; transient ones are worth a retry."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def user_agent(token: str | None) -> str:
    """img2dataset's user agent, naming the token so that sites can opt out of it."""
    if token:
        return f"{BASE_USER_AGENT} (compatible; {token}; +{PROJECT_URL})"
    return BASE_USER_AGENT


def is_disallowed(header_values: Iterable[str], token: str | None, directives: frozenset[str]) -> bool:
    """True if an X-Robots-Tag value opts out for all agents or for this token.

    A value is either "directive, directive" or "agent: directive, directive".
    """
    token = token.strip().lower() if token else None
    for value in header_values:
        agent, sep, rest = value.partition(":")
        named = agent.strip().lower() if sep else None
        listed = rest if sep else agent
        if named is not None and named not in ("*", token):
            continue
        if any(d.strip().lower() in directives for d in listed.split(",")):
            return True
    return False


def describe(err: BaseException) -> FetchError:
    """A short message for a urllib3/http.client/socket failure."""
    text = str(err)
    if isinstance(err, NameResolutionError) or "Name or service not known" in text:
        return FetchError("could not resolve host")
    if isinstance(err, NewConnectionError) or "Connection refused" in text:
        if "refused" in text:
            return FetchError("connection refused", transient=True)
        return FetchError(f"connection error: {type(err).__name__}", transient=True)
    if isinstance(err, ConnectTimeoutError):
        return FetchError("timed out while connecting", transient=True)
    if isinstance(err, (ReadTimeoutError, TimeoutError, socket.timeout)):
        return FetchError("timed out waiting for the server", transient=True)
    if isinstance(err, SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return FetchError("TLS certificate or handshake error")
    if isinstance(err, DecodeError):
        return FetchError("undecodable response body (bad content encoding)")
    if isinstance(err, (LocationValueError, ValueError, UnicodeError)):
        return FetchError("invalid url")
    if "IncompleteRead" in text or "InvalidChunkLength" in text or "Response ended prematurely" in text:
        return FetchError("truncated response body", transient=True)
    if "BadStatusLine" in text or "LineTooLong" in text or "more than 100 headers" in text:
        return FetchError("invalid HTTP response")
    if "RemoteDisconnected" in text:
        return FetchError("server closed the connection without a response", transient=True)
    if "reset by peer" in text or "Connection aborted" in text or "Connection broken" in text:
        return FetchError("connection reset by server", transient=True)
    return FetchError(f"connection error: {type(err).__name__}", transient=True)


class _Attempt:
    """One request attempt: its deadline and the connection it is currently using."""

    __slots__ = ("deadline", "conn", "expired", "done")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: HTTPConnection | None = None
        self.expired = False
        self.done = False

    def bind(self, conn: HTTPConnection) -> None:
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


class _Reaper:
    """A daemon thread that cuts the connection of attempts past their deadline.

    Lock-free on the hot path: attempts are appended to a deque (atomic in CPython) and
    the reaper looks at them a few times a second. One process runs one job's config, so
    deadlines arrive nearly in order and the reaper only inspects the oldest ones.
    """

    TICK = 0.05

    def __init__(self) -> None:
        self._queue: collections.deque[_Attempt] = collections.deque()
        self._expired: list[_Attempt] = []
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, attempt: _Attempt) -> None:
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


_REAPER = _Reaper()
_current = threading.local()


def _bind_current(conn: HTTPConnection) -> None:
    attempt = getattr(_current, "attempt", None)
    if attempt is not None:
        attempt.bind(conn)


class _Watched:
    """Registers the connection with the calling thread's attempt, so the reaper can cut it."""

    def connect(self) -> None:
        _bind_current(self)  # type: ignore[arg-type]
        super().connect()  # type: ignore[misc]

    def request(self, *args, **kwargs) -> None:
        _bind_current(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _header_text(value: str) -> str:
    """http.client reads header bytes as latin-1; Location is UTF-8 on the wire."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise FetchError("invalid url") from None


def _check_url(url: str) -> None:
    try:
        parsed = parse_url(url)
    except (ValueError, UnicodeError, LocationValueError):
        raise FetchError("invalid url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError("invalid url")


class Fetcher:
    """Downloads URLs from many threads; each thread keeps its own keep-alive pools."""

    def __init__(
        self,
        timeout: float,
        retries: int = 0,
        user_agent_token: str | None = None,
        directives: frozenset[str] = frozenset(),
        verify_ssl: bool = True,
        backoff: float = 0.5,
    ) -> None:
        self.timeout = float(timeout)
        self.retries = retries
        self.token = user_agent_token.strip().lower() if user_agent_token else None
        self.user_agent = user_agent(user_agent_token)
        self.directives = directives
        self.verify_ssl = verify_ssl
        self.backoff = backoff
        self._local = threading.local()
        # Per socket operation; the reaper enforces the total deadline a little later, so a plain
        # silent server is reported as such rather than as a slow download.
        self._socket_timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        if not verify_ssl:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def _pools(self) -> urllib3.PoolManager:
        pools = getattr(self._local, "pools", None)
        if pools is None:
            tls = {"cert_reqs": "CERT_NONE"}
            if self.verify_ssl:
                tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": CA_BUNDLE}
            pools = urllib3.PoolManager(
                num_pools=32,
                maxsize=1,
                retries=False,
                headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate", "Accept": "*/*"},
                **tls,
            )
            pools.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
            self._local.pools = pools
        return pools

    def fetch(self, url: str) -> bytes:
        """The body of url; retries transient failures with exponential backoff."""
        _check_url(url)
        for attempt in range(self.retries + 1):
            try:
                return self._fetch_once(url)
            except FetchError as err:
                if not err.transient or attempt == self.retries:
                    raise
            time.sleep(min(self.backoff * (2**attempt), 10.0) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _fetch_once(self, url: str) -> bytes:
        attempt = _Attempt(time.monotonic() + self.timeout)
        _current.attempt = attempt
        _REAPER.watch(attempt)
        try:
            return self._follow(url, attempt)
        except FetchError:
            if attempt.expired:
                raise self._too_long() from None
            raise
        except (HTTPError, OSError, ValueError, UnicodeError) as err:
            if attempt.expired:
                raise self._too_long() from None
            raise describe(err) from None
        finally:
            attempt.done = True
            _current.attempt = None

    def _too_long(self) -> FetchError:
        return FetchError(f"download took longer than the {self.timeout:g}s timeout", transient=True)

    def _check_deadline(self, attempt: _Attempt) -> None:
        if time.monotonic() > attempt.deadline:
            raise self._too_long()

    def _follow(self, url: str, attempt: _Attempt) -> bytes:
        pools = self._pools()
        for _ in range(MAX_REDIRECTS + 1):
            self._check_deadline(attempt)
            resp = pools.urlopen(
                "GET",
                url,
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=self._socket_timeout,
            )
            try:
                location = resp.headers.get("Location") if resp.status in REDIRECT_CODES else None
                if location:
                    url = urljoin(url, _header_text(location))
                    _check_url(url)
                    continue
                if resp.status >= 400:
                    transient = resp.status == 429 or resp.status >= 500
                    raise FetchError(f"HTTP {resp.status} {resp.reason or ''}".strip(), transient=transient)
                if self.directives and is_disallowed(resp.headers.getlist("X-Robots-Tag"), self.token, self.directives):
                    raise FetchError(OPT_OUT_MESSAGE)
                data = self._read_body(resp, attempt)
                resp.release_conn()
                return data
            finally:
                if not resp.closed and resp.connection is not None:
                    resp.close()
        raise FetchError("too many redirects")

    def _read_body(self, resp: urllib3.BaseHTTPResponse, attempt: _Attempt) -> bytes:
        parts = []
        while True:
            self._check_deadline(attempt)
            chunk = resp.read1(CHUNK)
            if not chunk:
                break
            parts.append(chunk)
        data = b"".join(parts) if len(parts) != 1 else parts[0]
        if not data:
            raise FetchError("empty response body")
        return data
