"""Downloads through a forward HTTP proxy, with urllib3's ProxyManager (CONNECT tunnels for https).

Which proxy a URL takes follows the variables requests honours: HTTPS_PROXY, HTTP_PROXY,
ALL_PROXY and NO_PROXY, upper or lower case, read once per Fetcher; the ``proxy`` option,
when given, replaces the first three (NO_PROXY still applies). The proxy resolves the
names, so the address policy can only judge the names asked for (fetch.py checks them).
A response is given the interface of http1.Response, so that redirects, opt-out, size
limits and deadlines are handled in one place.
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
import warnings
from urllib.parse import unquote

import urllib3
from urllib3.util import parse_url

from spark_img2ds.net import http1


def environment_proxies() -> dict[str, str]:
    """The proxy variables of this process ({"https": url, "http": url, "all": url, "no": hosts})."""
    return urllib.request.getproxies_environment()


def choose_proxy(scheme: str, host: str, explicit: str | None, proxies: dict[str, str]) -> str | None:
    """The proxy URL for a request to host over scheme, or None for a direct connection."""
    if explicit is None and not proxies:
        return None
    bare = host[1:-1] if host.startswith("[") else host
    if proxies.get("no") and urllib.request.proxy_bypass_environment(bare, proxies):
        return None
    chosen = explicit if explicit is not None else proxies.get(scheme) or proxies.get("all")
    if chosen and "://" not in chosen:
        chosen = "http://" + chosen  # as requests reads "proxy:3128"
    return chosen or None


class _ProxiedConnection:
    """What the deadline reaper and the keep-alive logic need of a connection; never reused."""

    reusable = False

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.response = response
        connection = getattr(response, "connection", None)
        self.sock = getattr(connection, "sock", None)
        self.read_whole = False

    def close(self) -> None:
        """Back to the pool once the body was read whole; a half-read stream is closed."""
        if self.read_whole:
            self.response.release_conn()
        else:
            self.response.close()


class ProxiedResponse(http1.Response):
    """An urllib3 response seen as an http1.Response: status, headers, and a bounded read()."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        super().__init__(response.status, response.reason or "", headers, "HTTP/1.1", _ProxiedConnection(response))
        self._response = response

    def read(self, limit: int | None = None) -> bytes:
        """The body, bounded as announced, as received and as decoded (http1.TooLarge past limit)."""
        length = http1.content_length(self.header_list("content-length"))
        if limit is not None and length is not None and length > limit:
            raise http1.TooLarge(f"announced {length} bytes")
        raw = self._response.read(amt=None if limit is None else limit + 1, decode_content=False)
        if limit is not None and len(raw) > limit:
            raise http1.TooLarge(f"more than {limit} bytes")
        if length is not None and len(raw) < length:
            raise http1.Truncated(f"{len(raw)} of {length} bytes")
        self.conn.read_whole = True
        return http1.decode_content(raw, self.header("content-encoding"), limit)


class ProxyPools:
    """One ProxyManager per proxy URL, shared by the threads of a Fetcher."""

    def __init__(self, tls: ssl.SSLContext, maxsize: int = 32) -> None:
        self.tls = tls
        if tls.verify_mode == ssl.CERT_NONE:  # the user chose ignore_ssl_certificate: no warning per request
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self.maxsize = maxsize
        self._managers: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def manager(self, proxy_url: str) -> urllib3.ProxyManager:
        with self._lock:
            found = self._managers.get(proxy_url)
            if found is None:
                parsed = parse_url(proxy_url)
                auth = parsed.auth
                headers = urllib3.make_headers(proxy_basic_auth=unquote(auth)) if auth else None
                found = urllib3.ProxyManager(
                    parsed._replace(auth=None).url,
                    proxy_headers=headers,
                    ssl_context=self.tls,
                    maxsize=self.maxsize,
                    block=False,
                )
                self._managers[proxy_url] = found
            return found

    def get(self, proxy_url: str, url: str, headers: dict[str, str], timeout: float) -> ProxiedResponse:
        """Send a GET for url through the proxy; the body is left to read()."""
        response = self.manager(proxy_url).request(
            "GET",
            url,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )
        return ProxiedResponse(response)
