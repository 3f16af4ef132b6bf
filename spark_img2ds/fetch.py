"""Downloading one URL: pooled keep-alive sessions, a total deadline, retries, opt-out.

Every failure becomes a FetchError whose message is short and free of the URL,
so that the per-error counts in the run summary group alike failures together.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable

import requests
import urllib3
from requests.adapters import HTTPAdapter

BASE_USER_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
PROJECT_URL = "https://github.com/rom1504/img2dataset"
CHUNK = 1 << 16
MAX_REDIRECTS = 10
OPT_OUT_MESSAGE = "Use of image disallowed by X-Robots-Tag directive"


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


def _describe(err: requests.RequestException) -> FetchError:
    """A short message for a requests/urllib3 failure."""
    text = str(err)
    if isinstance(err, requests.ConnectTimeout):
        return FetchError("timed out while connecting", transient=True)
    if isinstance(err, requests.ReadTimeout):
        return FetchError("timed out waiting for the server", transient=True)
    if isinstance(err, requests.TooManyRedirects):
        return FetchError("too many redirects")
    if isinstance(
        err, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)
    ):
        return FetchError("invalid url")
    if isinstance(err, requests.exceptions.SSLError):
        return FetchError("TLS certificate or handshake error")
    if isinstance(err, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text:
        return FetchError("truncated response body", transient=True)
    if "BadStatusLine" in text or "LineTooLong" in text or "more than 100 headers" in text:
        return FetchError("invalid HTTP response")
    if "RemoteDisconnected" in text:
        return FetchError("server closed the connection without a response", transient=True)
    if "reset by peer" in text or "Connection aborted" in text:
        return FetchError("connection reset by server", transient=True)
    if "Connection refused" in text:
        return FetchError("connection refused", transient=True)
    if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return FetchError("could not resolve host")
    return FetchError(f"connection error: {type(err).__name__}", transient=True)


class Fetcher:
    """Downloads URLs from many threads; each thread keeps its own keep-alive session."""

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
        if not verify_ssl:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=32, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self.user_agent
            session.max_redirects = MAX_REDIRECTS
            session.trust_env = False
            self._local.session = session
        return session

    def fetch(self, url: str) -> bytes:
        """The body of url; retries transient failures with exponential backoff."""
        for attempt in range(self.retries + 1):
            try:
                return self._fetch_once(url)
            except FetchError as err:
                if not err.transient or attempt == self.retries:
                    raise
            time.sleep(min(self.backoff * (2**attempt), 10.0) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _fetch_once(self, url: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        try:
            resp = self._session().get(url, timeout=(self.timeout, self.timeout), stream=True, verify=self.verify_ssl)
        except requests.RequestException as err:
            raise _describe(err) from None
        except (ValueError, UnicodeError):
            raise FetchError("invalid url") from None
        try:
            if resp.status_code >= 400:
                transient = resp.status_code == 429 or resp.status_code >= 500
                raise FetchError(f"HTTP {resp.status_code} {resp.reason or ''}".strip(), transient=transient)
            if self.directives and is_disallowed(resp.raw.headers.getlist("X-Robots-Tag"), self.token, self.directives):
                raise FetchError(OPT_OUT_MESSAGE)
            return self._read_body(resp, deadline)
        finally:
            resp.close()

    def _read_body(self, resp: requests.Response, deadline: float) -> bytes:
        parts = []
        try:
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(f"download took longer than the {self.timeout:g}s timeout", transient=True)
                chunk = resp.raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                parts.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if isinstance(err, urllib3.exceptions.DecodeError):
                raise FetchError("undecodable response body (bad content encoding)") from None
            if isinstance(err, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
                raise FetchError("timed out waiting for the server", transient=True) from None
            if isinstance(err, urllib3.exceptions.ProtocolError) and "IncompleteRead" not in str(err):
                raise FetchError("connection reset by server", transient=True) from None
            raise FetchError("truncated response body", transient=True) from None
        data = b"".join(parts)
        if not data:
            raise FetchError("empty response body")
        return data
