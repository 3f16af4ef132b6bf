"""Fetcher against real local HTTP servers: successes, every failure kind, retries, deadlines, opt-out."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spark_img2ds.net import fetch, robots
from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy
from spark_img2ds.net.robots import is_disallowed, user_agent

# The tests serve from loopback, which the default policy refuses (tests/unit/test_fetch_security.py).
LOCAL = AddressPolicy(allow_private_networks=True)

DEFAULT_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex"})
UA_SUFFIX = "(compatible; mytoken; +https://github.com/rom1504/img2dataset)"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def robots_url(server, value: str, name: str = "china.jpg") -> str:
    return f"{server.url}/robots/{urllib.parse.quote(value, safe='')}/{name}"


def fetch_error(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    return info.value


def unique_id() -> str:
    return uuid.uuid4().hex


# --- a tiny recording server of our own (the sample server must not be modified) ---------------


GZIP_PLAIN = b"compressed image bytes " * 500
CHUNKED_PARTS = [b"first part|", b"second part|", b"third part"]
PLAIN_BODY = b"\x89PNG\r\n\x1a\nrecorded body"


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _RecordingServer

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, self.headers.get("User-Agent"), self.client_address[1]))
        if self.path == "/plain":
            self._reply(PLAIN_BODY)
        elif self.path == "/gzip":
            self._reply(gzip.compress(GZIP_PLAIN), [("Content-Encoding", "gzip")])
        elif self.path == "/bad-gzip":
            self._reply(b"this is not gzip data", [("Content-Encoding", "gzip")])
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in CHUNKED_PARTS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/drip-headers":
            # Valid response headers, one every 0.1 s for ~4 s: no single socket read ever waits long.
            self.send_response(200)
            for i in range(40):
                self.send_header(f"X-Drip-{i}", "x")
                self.flush_headers()
                time.sleep(0.1)
            self.send_header("Content-Length", str(len(PLAIN_BODY)))
            self.end_headers()
            self.wfile.write(PLAIN_BODY)
        elif self.path.startswith("/slow-redirect/"):
            # Each hop answers in 0.4 s, well inside any per-socket timeout; ten hops take 4 s.
            hops = int(self.path.rsplit("/", 1)[1])
            time.sleep(0.4)
            if hops == 0:
                self._reply(PLAIN_BODY)
            else:
                self._reply(b"", [("Location", f"/slow-redirect/{hops - 1}")], code=302)
        elif self.path == "/redirect-plain":
            self._reply(b"moved", [("Location", "/plain")], code=302)
        elif self.path == "/missing-chunked":
            self.send_response(404)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"9\r\nnot found\r\n0\r\n\r\n")
        elif self.path == "/missing-large":
            self._reply(b"x" * (fetch.SMALL_BODY_BYTES + 1), code=404)
        elif self.path == "/missing-unframed":
            self.send_response(404)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"not found, until the connection closes")
            self.close_connection = True
        elif self.path == "/two-robots":
            self._reply(PLAIN_BODY, [("X-Robots-Tag", "otherbot: noai"), ("X-Robots-Tag", "mybot: noimageai")])
        else:
            self._reply(b"no such route", code=404)

    def _reply(self, body: bytes, headers=(), code: int = 200) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str | None, int]] = []

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up (deadline tests, closed keep-alive sessions) are expected; stay quiet."""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def recorder():
    srv = _RecordingServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


# --- success -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["china.jpg", "camera.png", "pic.webp", "big.jpg", "tiny.png"])
def test_fetch_returns_exact_file_bytes(server, image_dir, name):
    data = Fetcher(policy=LOCAL, timeout=2).fetch(f"{server.url}/img/{name}")
    assert data == (image_dir / name).read_bytes()


def test_redirect_chain_is_followed(server, image_dir):
    data = Fetcher(policy=LOCAL, timeout=2).fetch(f"{server.url}/redirect/3/china.jpg")
    assert data == (image_dir / "china.jpg").read_bytes()


def test_redirect_loop_is_too_many_redirects(server):
    before = server.hits
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, retries=2, backoff=0.01), f"{server.url}/redirect-loop")
    assert str(err) == "too many redirects"
    assert err.transient is False
    # MAX_REDIRECTS redirects followed after the first request, and no retry of a permanent failure.
    assert server.hits - before == fetch.MAX_REDIRECTS + 1


def test_non_image_body_is_returned_as_is(server):
    assert Fetcher(policy=LOCAL, timeout=2).fetch(f"{server.url}/notimage") == b"<html><body>not an image</body></html>"


def test_gzip_content_encoding_is_decoded(recorder):
    assert Fetcher(policy=LOCAL, timeout=2).fetch(f"{recorder.url}/gzip") == GZIP_PLAIN


def test_chunked_transfer_encoding_is_joined(recorder):
    assert Fetcher(policy=LOCAL, timeout=2).fetch(f"{recorder.url}/chunked") == b"".join(CHUNKED_PARTS)


def test_undecodable_gzip_body_is_a_fetch_error(recorder):
    # Whatever the label, a body that cannot be decoded must surface as a FetchError, never as a
    # urllib3/zlib exception escaping fetch() (which would fail the whole Spark task).
    with pytest.raises(FetchError):
        Fetcher(policy=LOCAL, timeout=2).fetch(f"{recorder.url}/bad-gzip")


def test_keep_alive_connection_is_reused(recorder):
    fetcher = Fetcher(policy=LOCAL, timeout=2)
    for _ in range(3):
        assert fetcher.fetch(f"{recorder.url}/plain") == PLAIN_BODY
    ports = {port for _, _, port in recorder.seen}
    assert len(recorder.seen) == 3
    assert len(ports) == 1, f"expected one pooled connection, saw client ports {ports}"


def test_many_threads_share_one_fetcher(server, image_dir):
    names = ["china.jpg", "camera.png", "coffee.jpg", "rocket.jpg", "flower.jpg", "tiny.png", "pic.webp", "gray.jpg"]
    fetcher = Fetcher(policy=LOCAL, timeout=2)
    urls = [f"{server.url}/img/{n}" for n in names * 4]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(fetcher.fetch, urls))
    assert results == [(image_dir / n).read_bytes() for n in names * 4]


# --- HTTP errors and retries -------------------------------------------------------------------


def test_404_is_permanent_and_not_retried(server):
    before = server.hits
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, retries=3, backoff=0.01), f"{server.url}/status/404")
    assert str(err) == "HTTP 404 Not Found"
    assert err.transient is False
    assert server.hits - before == 1


def test_missing_file_is_404(server):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2), f"{server.url}/img/no-such-file.jpg")
    assert str(err) == "HTTP 404 Not Found"
    assert err.transient is False


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (500, "HTTP 500 Internal Server Error"),
        (503, "HTTP 503 Service Unavailable"),
        (429, "HTTP 429 Too Many Requests"),
    ],
)
def test_server_errors_and_429_are_transient(server, code, message):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2), f"{server.url}/status/{code}")
    assert str(err) == message
    assert err.transient is True


@pytest.mark.parametrize(("code", "message"), [(403, "HTTP 403 Forbidden"), (410, "HTTP 410 Gone")])
def test_other_client_errors_are_permanent(server, code, message):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2), f"{server.url}/status/{code}")
    assert str(err) == message
    assert err.transient is False


def test_transient_error_is_retried_exactly_retries_times(server):
    before = server.hits
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, retries=2, backoff=0.01), f"{server.url}/status/500")
    assert str(err) == "HTTP 500 Internal Server Error"
    assert err.transient is True
    assert server.hits - before == 3


@pytest.mark.parametrize("retries", [1, 3])
def test_flaky_succeeds_with_retries(server, image_dir, retries):
    before = server.hits
    data = Fetcher(policy=LOCAL, timeout=2, retries=retries, backoff=0.01).fetch(
        f"{server.url}/flaky/{unique_id()}/china.jpg"
    )
    assert data == (image_dir / "china.jpg").read_bytes()
    assert server.hits - before == 2  # one failure, one success, no extra attempts


def test_flaky_fails_without_retries(server, image_dir):
    url = f"{server.url}/flaky/{unique_id()}/china.jpg"
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, retries=0), url)
    assert str(err) == "HTTP 500 Internal Server Error"
    assert err.transient is True
    # The server now remembers the id: the next plain fetch succeeds, proving the first one was the 500.
    assert Fetcher(policy=LOCAL, timeout=2).fetch(url) == (image_dir / "china.jpg").read_bytes()


# --- timeouts and deadlines --------------------------------------------------------------------


def test_hanging_server_times_out_transiently(server):
    start = time.monotonic()
    err = fetch_error(Fetcher(policy=LOCAL, timeout=1), f"{server.url}/hang/30")
    elapsed = time.monotonic() - start
    assert str(err) == "timed out waiting for the server"
    assert err.transient is True
    assert elapsed < 10


@pytest.mark.parametrize(("timeout", "label"), [(1, "1"), (0.5, "0.5")])
def test_slow_drip_hits_total_deadline(server, timeout, label):
    start = time.monotonic()
    err = fetch_error(Fetcher(policy=LOCAL, timeout=timeout), f"{server.url}/slow/big.jpg")
    elapsed = time.monotonic() - start
    assert str(err) == f"download took longer than the {label}s timeout"
    assert err.transient is True
    assert elapsed < 10  # the drip alone takes ~5 s; the deadline must cut it short


def test_total_deadline_covers_slowly_dripped_headers(recorder):
    start = time.monotonic()
    err = fetch_error(Fetcher(policy=LOCAL, timeout=1), f"{recorder.url}/drip-headers")
    elapsed = time.monotonic() - start
    assert err.transient is True
    assert str(err) == "download took longer than the 1s timeout"
    assert elapsed < 3  # the headers alone take ~4 s to arrive


def test_total_deadline_covers_a_chain_of_slow_redirects(recorder):
    start = time.monotonic()
    err = fetch_error(Fetcher(policy=LOCAL, timeout=1), f"{recorder.url}/slow-redirect/9")
    elapsed = time.monotonic() - start
    assert str(err) == "download took longer than the 1s timeout"
    assert err.transient is True
    assert elapsed < 2.5


def test_slow_redirects_within_the_deadline_succeed(recorder):
    assert Fetcher(policy=LOCAL, timeout=3).fetch(f"{recorder.url}/slow-redirect/2") == PLAIN_BODY


@pytest.mark.parametrize(
    ("first", "reused"),
    [
        ("/nowhere", True),  # a 404 with a small Content-Length body
        ("/missing-chunked", True),
        ("/redirect-plain", True),  # the redirect and its target share the connection
        ("/missing-large", False),  # larger than SMALL_BODY_BYTES: not read, the connection is closed
        ("/missing-unframed", False),  # a body that runs to the connection's end
    ],
)
def test_the_connection_of_a_small_error_or_redirect_serves_the_next_request(recorder, first, reused):
    fetcher = Fetcher(policy=LOCAL, timeout=5)
    try:
        fetcher.fetch(f"{recorder.url}{first}")
    except FetchError as err:
        assert str(err) == "HTTP 404 Not Found"
    assert fetcher.fetch(f"{recorder.url}/plain") == PLAIN_BODY
    ports = [port for _, _, port in recorder.seen]
    assert len(ports) == (3 if first == "/redirect-plain" else 2)
    assert (len(set(ports)) == 1) is reused, ports


def test_deadline_cut_connection_is_not_reused(recorder):
    fetcher = Fetcher(policy=LOCAL, timeout=1)
    fetch_error(fetcher, f"{recorder.url}/drip-headers")
    assert fetcher.fetch(f"{recorder.url}/plain") == PLAIN_BODY


# --- connection-level failures -----------------------------------------------------------------


def test_connection_reset(server):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2), f"{server.url}/reset")
    assert str(err) == "connection reset by server"
    assert err.transient is True


def test_truncated_body(server):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2), f"{server.url}/truncated/china.jpg")
    assert str(err) == "truncated response body"
    assert err.transient is True


def test_connection_refused():
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2), f"http://127.0.0.1:{closed_port()}/img/china.jpg")
    assert str(err) == "connection refused"
    assert err.transient is True


@pytest.mark.parametrize("url", ["not a url", "", "http://", "//example.com/a.jpg"])
def test_invalid_urls(url):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, retries=2, backoff=0.01), url)
    assert str(err) == "invalid url"
    assert err.transient is False


def test_empty_body(server):
    before = server.hits
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, retries=2, backoff=0.01), f"{server.url}/status/200")
    assert str(err) == "empty response body"
    assert err.transient is False
    assert server.hits - before == 1


def test_error_messages_do_not_contain_the_url(server):
    port = closed_port()
    cases = [
        f"{server.url}/status/404",
        f"{server.url}/reset",
        f"{server.url}/truncated/china.jpg",
        f"{server.url}/redirect-loop",
        f"http://127.0.0.1:{port}/x.jpg",
    ]
    for url in cases:
        err = fetch_error(Fetcher(policy=LOCAL, timeout=2), url)
        assert "127.0.0.1" not in str(err)
        assert str(port) not in str(err)


# --- X-Robots-Tag opt-out ----------------------------------------------------------------------


def test_robots_noai_is_opt_out_with_default_directives(server):
    err = fetch_error(Fetcher(policy=LOCAL, timeout=2, directives=DEFAULT_DIRECTIVES), robots_url(server, "noai"))
    assert str(err) == robots.OPT_OUT_MESSAGE
    assert err.transient is False


def test_robots_ignored_without_directives(server, image_dir):
    data = Fetcher(policy=LOCAL, timeout=2, directives=frozenset()).fetch(robots_url(server, "noai"))
    assert data == (image_dir / "china.jpg").read_bytes()


@pytest.mark.parametrize(
    ("value", "token", "disallowed"),
    [
        ("otherbot: noai", "mybot", False),
        ("mybot: noai", "mybot", True),
        ("mybot: noai", "MyBot", True),
        ("MYBOT: NoAI", "mybot", True),
        ("mybot: noai", None, False),
        ("*: noai", "mybot", True),
        ("*: noai", None, True),
        ("noindex, nofollow", "mybot", True),
        ("nofollow", "mybot", False),
        ("NoAI", None, True),
        ("noimageindex", None, True),
        ("nofollow, noimageai", None, True),
    ],
)
def test_robots_via_server(server, image_dir, value, token, disallowed):
    fetcher = Fetcher(policy=LOCAL, timeout=2, user_agent_token=token, directives=DEFAULT_DIRECTIVES)
    url = robots_url(server, value)
    if disallowed:
        err = fetch_error(fetcher, url)
        assert str(err) == robots.OPT_OUT_MESSAGE
        assert err.transient is False
    else:
        assert fetcher.fetch(url) == (image_dir / "china.jpg").read_bytes()


def test_robots_multiple_headers_each_considered(recorder):
    url = f"{recorder.url}/two-robots"
    assert (
        Fetcher(policy=LOCAL, timeout=2, user_agent_token="thirdbot", directives=DEFAULT_DIRECTIVES).fetch(url)
        == PLAIN_BODY
    )
    for token in ("mybot", "otherbot"):
        err = fetch_error(Fetcher(policy=LOCAL, timeout=2, user_agent_token=token, directives=DEFAULT_DIRECTIVES), url)
        assert str(err) == robots.OPT_OUT_MESSAGE


@pytest.mark.parametrize(
    ("values", "token", "expected"),
    [
        (["otherbot: noai"], "mybot", False),
        (["mybot: noai"], "mybot", True),
        (["mybot: noai"], "MyBot", True),
        (["  MyBot :  NOAI  "], "mybot", True),
        (["mybot: noai"], None, False),
        (["*: noimageai"], "mybot", True),
        (["noindex, nofollow"], "mybot", True),
        (["nofollow"], "mybot", False),
        (["NoAI"], None, True),
        (["nofollow", "otherbot: noai"], "mybot", False),
        (["nofollow", "mybot: noindex"], "mybot", True),
        ([], "mybot", False),
        ([""], "mybot", False),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST"], "mybot", False),
    ],
)
def test_is_disallowed(values, token, expected):
    assert is_disallowed(values, token, DEFAULT_DIRECTIVES) is expected


def test_is_disallowed_uses_only_given_directives():
    assert is_disallowed(["noai"], None, frozenset()) is False
    assert is_disallowed(["noai"], None, frozenset({"noindex"})) is False
    assert is_disallowed(["noindex"], None, frozenset({"noindex"})) is True


# --- user agent ----------------------------------------------------------------------------------


def test_user_agent_without_token():
    assert user_agent(None) == robots.BASE_USER_AGENT
    assert user_agent("") == robots.BASE_USER_AGENT


def test_user_agent_with_token():
    ua = user_agent("mytoken")
    assert UA_SUFFIX in ua
    assert ua == f"{robots.BASE_USER_AGENT} {UA_SUFFIX}"


def test_user_agent_header_is_sent(recorder):
    Fetcher(policy=LOCAL, timeout=2, user_agent_token="mytoken").fetch(f"{recorder.url}/plain")
    Fetcher(policy=LOCAL, timeout=2).fetch(f"{recorder.url}/plain")
    Fetcher(policy=LOCAL, timeout=2, user_agent_token="MyToken").fetch(f"{recorder.url}/plain")
    sent = [ua for _, ua, _ in recorder.seen]
    assert sent == [
        f"{robots.BASE_USER_AGENT} {UA_SUFFIX}",
        robots.BASE_USER_AGENT,
        f"{robots.BASE_USER_AGENT} (compatible; MyToken; +https://github.com/rom1504/img2dataset)",
    ]


def test_user_agent_header_is_sent_on_every_thread(recorder):
    fetcher = Fetcher(policy=LOCAL, timeout=2, user_agent_token="mytoken")
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(fetcher.fetch, [f"{recorder.url}/plain"] * 8)) == [PLAIN_BODY] * 8
    assert [ua for _, ua, _ in recorder.seen] == [f"{robots.BASE_USER_AGENT} {UA_SUFFIX}"] * 8


class _Conn:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False

    def close(self) -> None:
        self.closed = True


def test_the_idle_pool_gives_back_the_latest_connection_and_closes_the_oldest_servers_first():
    from spark_img2ds.net.pool import IdlePool

    pool = IdlePool(limit=3)
    a1, a2, b1, c1 = _Conn("a1"), _Conn("a2"), _Conn("b1"), _Conn("c1")
    pool.give(("a",), a1)
    pool.give(("a",), a2)
    pool.give(("b",), b1)
    assert pool.take(("a",)) is a2 and len(pool) == 2
    pool.give(("a",), a2)  # a is now the most recently used server
    pool.give(("c",), c1)  # over the limit: b, the least recently used server, loses its connection
    assert b1.closed and not any(c.closed for c in (a1, a2, c1))
    assert pool.take(("b",)) is None and len(pool) == 3


def test_a_connection_given_back_is_unbound_from_its_attempt_and_one_past_its_deadline_is_closed():
    from spark_img2ds.net import http1
    from spark_img2ds.net.deadline import Attempt

    fetcher = Fetcher(policy=LOCAL, timeout=5)
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        live, cut = (http1.Connection(a) for a, _ in pairs)
        attempt = Attempt(time.monotonic() + 5)
        attempt.bind(live)
        fetcher._keep(("http", "a", 80), live, attempt)
        assert attempt.conn is None  # the deadline reaper can no longer cut it under another thread
        assert fetcher._pool.take(("http", "a", 80)) is live
        late = Attempt(time.monotonic() - 1)
        late.bind(cut)
        late.expired = True
        fetcher._keep(("http", "b", 80), cut, late)
        assert fetcher._pool.take(("http", "b", 80)) is None and not cut.reusable
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_the_idle_limit_follows_the_file_descriptors_a_process_may_open():
    from spark_img2ds.net.pool import MAX_IDLE_CONNECTIONS, idle_limit

    assert idle_limit(-1) == MAX_IDLE_CONNECTIONS  # RLIM_INFINITY
    assert idle_limit(1_048_576) == MAX_IDLE_CONNECTIONS
    assert idle_limit(1024) == 256  # a quarter of a common soft limit
    assert idle_limit(20) == 16  # never fewer than 16
