"""Downloading one URL: pooled keep-alive connections, a total deadline, retries, opt-out.

Requests go out through http1, a lean HTTP/1.1 client; URLs are parsed and normalised
by urllib3's parse_url, as requests does. A task's threads share its kept-alive
connections (IdlePool; a connection serves one request at a time). Each attempt has a
total deadline (deadline.py) and opening a connection a shorter one (connect_timeout); a
host whose connections keep timing out is skipped for a while (politeness.py). The
X-Robots-Tag opt-out is checked before the body is read (robots.py).

Every failure becomes a FetchError whose message is short and free of the URL,
so that the per-error counts in the run summary group alike failures together.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import threading
import time
from urllib.parse import urljoin

import certifi
import urllib3.exceptions as u3
from urllib3.exceptions import LocationValueError
from urllib3.util import parse_url

from spark_img2ds.net import connect, http1
from spark_img2ds.net.deadline import REAPER, Attempt
from spark_img2ds.net.policy import (
    CONNECT_TIMEOUT,
    MAX_CONNECTIONS_PER_HOST,
    MAX_DOWNLOAD_BYTES,
    MAX_REDIRECTS,
    SCHEMES,
    AddressPolicy,
)
from spark_img2ds.net.politeness import COOLDOWN_MAX, HostBusy, HostDown, HostGate
from spark_img2ds.net.pool import IdlePool
from spark_img2ds.net.proxy import ProxiedResponse, ProxyPools, choose_proxy, environment_proxies
from spark_img2ds.net.robots import (
    OPT_OUT_MESSAGE,
    TDM_DIRECTIVE,
    TDM_MESSAGE,
    is_disallowed,
    retry_after,
    tdm_reserved,
    user_agent,
)

CA_BUNDLE = certifi.where()

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
SMALL_BODY_BYTES = 64 * 1024  # an error page or a redirect's body read to keep its connection


class FetchError(Exception):
    """A download that did not give image bytes; transient ones are worth a retry."""

    def __init__(
        self, message: str, transient: bool = False, retry_after: float | None = None, throttle: bool = False
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after  # seconds the server asked us to wait (429, 503)
        self.throttle = throttle  # the server asked us to slow down (429, 503)


def describe(err: BaseException) -> FetchError:
    """A short message for a socket, TLS or HTTP framing failure."""
    if isinstance(err, FetchError):
        return err
    if isinstance(err, socket.gaierror):
        return FetchError("could not resolve host")
    if isinstance(err, ConnectionRefusedError):
        return FetchError("connection refused", transient=True)
    if isinstance(err, TimeoutError):
        return FetchError("timed out waiting for the server", transient=True)
    if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return FetchError("connection reset by server", transient=True)
    if isinstance(err, ssl.SSLError):
        return FetchError("TLS certificate or handshake error")
    if isinstance(err, connect.AddressRefused):
        return FetchError(str(err))
    if isinstance(err, http1.TooLarge):
        return FetchError("response body larger than max_download_bytes")
    if isinstance(err, http1.BadContentEncoding):
        return FetchError("undecodable response body (bad content encoding)")
    if isinstance(err, http1.Truncated):
        return FetchError("truncated response body", transient=True)
    if isinstance(err, http1.ProtocolError):
        return FetchError("invalid HTTP response")
    if isinstance(err, http1.NoResponse):
        return FetchError("server closed the connection without a response", transient=True)
    if isinstance(err, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return FetchError("connection reset by server", transient=True)
    if isinstance(err, u3.HTTPError):
        return _describe_urllib3(err)
    if isinstance(err, (LocationValueError, ValueError, UnicodeError)):
        return FetchError("invalid url")
    return FetchError(f"connection error: {type(err).__name__}", transient=True)


def _describe_urllib3(err: u3.HTTPError) -> FetchError:
    """The same short messages for failures on the proxy path (urllib3's exceptions)."""
    if isinstance(err, u3.ProxyError):
        return FetchError("proxy error: the proxy could not be reached or refused the request", transient=True)
    if isinstance(err, u3.SSLError):
        return FetchError("TLS certificate or handshake error")
    if isinstance(err, u3.NameResolutionError):
        return FetchError("could not resolve host")
    if isinstance(err, u3.NewConnectionError):
        return FetchError("connection refused", transient=True)
    if isinstance(err, u3.ConnectTimeoutError):
        return FetchError("timed out while connecting", transient=True)
    if isinstance(err, u3.ReadTimeoutError):
        return FetchError("timed out waiting for the server", transient=True)
    if isinstance(err, u3.ProtocolError):
        return FetchError("connection reset by server", transient=True)
    return FetchError(f"connection error: {type(err).__name__}", transient=True)


def _scheme_label(scheme: str) -> str:
    """A scheme as an error message may show it: short, and only letters, digits, + - . (never a secret)."""
    label = "".join(c for c in scheme[:16] if c.isalnum() or c in "+-.")
    return label or "other"


def _header_text(value: str) -> str:
    """http.client reads header bytes as latin-1; Location is UTF-8 on the wire."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise FetchError("invalid url") from None


class Fetcher:
    """Downloads URLs from many threads, which share its kept-alive connections (IdlePool)."""

    def __init__(
        self,
        timeout: float,
        retries: int = 0,
        user_agent_token: str | None = None,
        directives: frozenset[str] = frozenset(),
        verify_ssl: bool = True,
        backoff: float = 0.5,
        policy: AddressPolicy | None = None,
        max_redirects: int = MAX_REDIRECTS,
        max_bytes: int | None = MAX_DOWNLOAD_BYTES,
        proxy: str | None = None,
        max_connections_per_host: int = MAX_CONNECTIONS_PER_HOST,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.timeout = float(timeout)
        self.connect_timeout = min(float(connect_timeout), self.timeout)
        self.gate = HostGate(max_connections_per_host, max_cooldown=min(COOLDOWN_MAX, self.timeout))
        self.policy = policy if policy is not None else AddressPolicy()
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self.retries = retries
        self.token = user_agent_token.strip().lower() if user_agent_token else None
        self.user_agent = user_agent(user_agent_token)
        self.directives = directives
        self.backoff = backoff
        self._local = threading.local()
        self._pool = IdlePool()
        self._tls = connect.tls_context(verify_ssl, *connect.trust_store(os.environ, CA_BUNDLE))
        self._headers = (("User-Agent", self.user_agent), ("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"))
        self.proxy = proxy
        self._proxies = environment_proxies()
        self._proxy_pools = ProxyPools(self._tls)

    def fetch(self, url: str) -> bytes:
        """The body of url; retries transient failures with exponential backoff.

        Each attempt holds one of its host's slots (HostGate); a 429 or 503 puts the host in a
        cool-down that the next attempt, and every other request to that host, waits out.
        """
        self._local.delayed, self._local.throttled, self._local.unanswered = False, None, None
        target = _Target.of(url, self.policy)  # an invalid or refused url is not worth a retry
        for attempt in range(self.retries + 1):
            try:
                try:
                    with self.gate.slot(target.host, self.timeout) as waited:
                        self._local.delayed = self._local.delayed or waited
                        data = self._fetch_once(url, target)
                except HostBusy as err:
                    if isinstance(err, HostDown):
                        self._local.unanswered = target.host
                    raise FetchError(str(err), transient=True) from None
                self.gate.relieve(target.host)
                return data
            except FetchError as err:
                if err.throttle:
                    self.gate.throttle(target.host, err.retry_after)
                    self._local.throttled = target.host
                if not err.transient or attempt == self.retries:
                    raise
                # after a 429/503 the host's cool-down is the wait (the next slot() waits it out)
                wait = 0.0 if err.throttle else min(self.backoff * (2**attempt), 10.0) * (0.5 + random.random())
            time.sleep(wait)
        raise AssertionError("unreachable")

    def politeness(self) -> tuple[bool, str | None, str | None]:
        """Since this thread last asked: whether its fetch waited for its host, the host if it throttled us,
        and the host if it did not answer (a connection timed out, or the host was skipped for that)."""
        local = self._local
        found = getattr(local, "delayed", False), getattr(local, "throttled", None), getattr(local, "unanswered", None)
        local.delayed, local.throttled, local.unanswered = False, None, None
        return found

    def _fetch_once(self, url: str, target: _Target) -> bytes:
        attempt = Attempt(time.monotonic() + self.timeout)
        REAPER.watch(attempt)
        try:
            return self._follow(url, target, attempt)
        except FetchError:
            if attempt.expired:
                raise self._too_long() from None
            raise
        except (OSError, ValueError, UnicodeError, http1.HTTPFailure, u3.HTTPError) as err:
            if attempt.expired:
                raise self._too_long() from None
            raise describe(err) from None
        finally:
            attempt.done = True

    def _too_long(self) -> FetchError:
        return FetchError(f"download took longer than the {self.timeout:g}s timeout", transient=True)

    def _check_deadline(self, attempt: Attempt) -> None:
        if time.monotonic() > attempt.deadline:
            raise self._too_long()

    def _follow(self, url: str, target: _Target, attempt: Attempt) -> bytes:
        for _ in range(self.max_redirects + 1):
            self._check_deadline(attempt)
            resp = self._send(target, attempt)
            conn = resp.conn
            try:
                location = resp.header("location") if resp.status in REDIRECT_CODES else None
                if location:
                    url = urljoin(url, _header_text(location))
                    self._keep_after(resp, target.key, attempt)
                    conn = None
                    target = _Target.of(url, self.policy)
                    continue
                if resp.status >= 400:
                    transient = resp.status in (408, 429) or resp.status >= 500  # other 4xx: the answer stands
                    throttle = resp.status in (429, 503)
                    after = retry_after(resp.header("retry-after")) if throttle else None
                    self._keep_after(resp, target.key, attempt)
                    conn = None
                    raise FetchError(f"HTTP {resp.status} {resp.reason}".strip(), transient, after, throttle)
                if self.directives:
                    if is_disallowed(resp.header_list("x-robots-tag"), self.token, self.directives):
                        raise FetchError(OPT_OUT_MESSAGE)
                    if TDM_DIRECTIVE in self.directives and tdm_reserved(resp.header_list("tdm-reservation")):
                        raise FetchError(TDM_MESSAGE)
                self._check_deadline(attempt)
                data = resp.read(self.max_bytes)
                if not data:
                    raise FetchError("empty response body")
                if conn.reusable:
                    self._keep(target.key, conn, attempt)
                    conn = None
                return data
            finally:
                if conn is not None:
                    conn.close()  # only a fully read success goes back: anything else may be out of step
        raise FetchError("too many redirects")

    def _send(self, target: _Target, attempt: Attempt) -> http1.Response | ProxiedResponse:
        """Send the GET through the proxy that applies, else on a kept-alive connection, else a new one.

        A kept-alive connection the server has meanwhile closed fails before any byte of
        a response arrives: the request is then sent once more on a new connection.
        """
        proxy = choose_proxy(target.scheme, target.host, self.proxy, self._proxies)
        if proxy is not None:
            remaining = attempt.deadline - time.monotonic()
            if remaining <= 0 or attempt.expired:
                raise self._too_long()
            resp = self._proxy_pools.get(proxy, target.url, dict(self._headers), min(self.timeout, remaining))
            attempt.bind(resp.conn)
            return resp
        conn = self._pool.take(target.key)
        if conn is not None:
            try:
                attempt.bind(conn)
                conn.sock.sendall(target.request(self._headers))
                return http1.read_head(conn)
            except (http1.NoResponse, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                conn.close()
                if attempt.expired:
                    raise
            except BaseException:
                conn.close()
                raise
        conn = self._connect(target, attempt)
        try:
            conn.sock.sendall(target.request(self._headers))
            return http1.read_head(conn)
        except BaseException:
            conn.close()
            raise

    def _connect(self, target: _Target, attempt: Attempt) -> http1.Connection:
        if attempt.expired:
            raise self._too_long()
        budget = min(self.connect_timeout, attempt.deadline - time.monotonic())
        if budget <= 0:
            raise self._too_long()
        try:
            conn = connect.connect(
                target.scheme,
                target.address,
                target.port,
                self.timeout,
                self._tls,
                target.host,
                self.policy.refusal,
                connect_timeout=budget,
            )
        except TimeoutError:
            self.gate.unanswered(target.host)
            self._local.unanswered = target.host
            raise FetchError("timed out while connecting", transient=True) from None
        except ssl.SSLError:
            raise FetchError("TLS certificate or handshake error") from None
        self.gate.answered(target.host)
        attempt.bind(conn)
        return conn

    def _keep(self, key: tuple, conn: http1.Connection, attempt: Attempt) -> None:
        """Give a connection back to the pool, unbound from the attempt first: once another thread
        holds it, this attempt's deadline must not cut it. One the deadline may have cut is closed."""
        attempt.conn = None
        if attempt.expired:
            conn.close()
        else:
            self._pool.give(key, conn)

    def _keep_after(self, resp: http1.Response | ProxiedResponse, key: tuple, attempt: Attempt) -> None:
        """Keep the connection of an answer that is not the image (an error, a redirect) if its body is small.

        On lists of many hosts a quarter of the URLs fail with such answers; closing each
        one's connection would make the next request to that host pay a new handshake.
        """
        conn = resp.conn
        if not isinstance(resp, ProxiedResponse) and resp.discard(SMALL_BODY_BYTES):
            self._keep(key, conn, attempt)
        else:
            conn.close()


class _Target:
    """Where a URL's GET goes: connection key, socket address, Host header, request target."""

    __slots__ = ("scheme", "host", "address", "port", "host_header", "path", "key", "url")

    @classmethod
    def of(cls, url: str, policy: AddressPolicy) -> _Target:
        """The target of url; FetchError for a malformed url, a scheme other than http(s) or a refused host."""
        try:
            parsed = parse_url(url)
        except (ValueError, UnicodeError, LocationValueError):
            raise FetchError("invalid url") from None
        if parsed.scheme is not None and parsed.scheme not in SCHEMES:
            raise FetchError(f"scheme not allowed: {_scheme_label(parsed.scheme)}")
        if parsed.scheme is None or not parsed.host:
            raise FetchError("invalid url")
        refused = policy.name_refusal(parsed.host)
        if refused is not None:
            raise FetchError(refused)
        t = cls()
        t.scheme = parsed.scheme
        t.host = parsed.host
        t.address = t.host[1:-1] if t.host.startswith("[") else t.host
        default = 443 if t.scheme == "https" else 80
        t.port = parsed.port or default
        t.host_header = t.host if t.port == default else f"{t.host}:{t.port}"
        t.path = parsed.request_uri
        t.key = (t.scheme, t.address, t.port)
        t.url = f"{t.scheme}://{t.host_header}{t.path}"
        return t

    def request(self, headers: tuple[tuple[str, str], ...]) -> bytes:
        return http1.request_bytes(self.path, self.host_header, headers)
