"""HTTP from a real raw-socket server: each framing case gives the body, each malformed one a clear FetchError."""

from __future__ import annotations

import gzip
import socket
import threading
import zlib

import pytest

from spark_img2ds.net import http1
from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy

# The tests serve from loopback, which the default policy refuses (tests/unit/test_fetch_security.py).
LOCAL = AddressPolicy(allow_private_networks=True)

RESPONSES = {
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
    "bad-status": b"HTTP/1.1 abc OK\r\n\r\n",
    "not-http": b"garbage",
    "silence": b"",
    "huge-header": b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100_000 + b"\r\nContent-Length: 1\r\n\r\nx",
    "many-headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X%d: a\r\n" % i for i in range(200)) + b"\r\nx",
    "binary-location": b"HTTP/1.1 302 Found\r\nLocation: http://\xff\xfe/x\r\nContent-Length: 0\r\n\r\n",
    "empty-location": b"HTTP/1.1 302 Found\r\nLocation: \r\nContent-Length: 0\r\n\r\n",
    "bad-gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
    "cut-gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\n"
    + gzip.compress(b"x" * 99)[:12],
    "conflicting-length": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nbody",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nbody",
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbody",
    "cut-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nbody",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "cut-headers": b"HTTP/1.1 200 OK\r\nContent-Len",
    "lying-length": b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000000\r\n\r\nbody",
    "lying-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\nbody",
    "short-length": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nbody",
    "short-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3E8\r\nbody",
}
EXPECTED = {
    "bad-chunk": ("truncated response body", True),
    "bad-status": ("invalid HTTP response", False),
    "not-http": ("invalid HTTP response", False),
    "silence": ("server closed the connection without a response", True),
    "huge-header": ("invalid HTTP response", False),
    "many-headers": ("invalid HTTP response", False),
    "binary-location": ("invalid url", False),
    "empty-location": ("empty response body", False),
    "bad-gzip": ("undecodable response body (bad content encoding)", False),
    "cut-gzip": ("undecodable response body (bad content encoding)", False),
    "conflicting-length": ("invalid HTTP response", False),
    "bad-length": ("invalid HTTP response", False),
    "short-body": ("truncated response body", True),
    "cut-chunk": ("truncated response body", True),
    "switching": ("invalid HTTP response", False),
    "cut-headers": ("invalid HTTP response", False),
    # Larger than max_download_bytes (50 MB by default): refused before reading.
    "lying-length": ("response body larger than max_download_bytes", False),
    "lying-chunk": ("response body larger than max_download_bytes", False),
    "short-length": ("truncated response body", True),
    "short-chunk": ("truncated response body", True),
}
BIG_BODY_SIZE = http1.PREALLOCATE_MAX + 12345
RAW_DEFLATE = zlib.compressobj(wbits=-zlib.MAX_WBITS)
RAW_DEFLATE = RAW_DEFLATE.compress(b"raw deflate body") + RAW_DEFLATE.flush()
VALID = {
    "close-delimited": (b"HTTP/1.0 200 OK\r\n\r\nbody until close", b"body until close"),
    "interim-100": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
        b"body",
    ),
    "bare-lf": (b"HTTP/1.1 200 OK\nContent-Length: 4\n\nbody", b"body"),
    "chunk-extensions-and-trailer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=value\r\nbody\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"bodyabc",
    ),
    "chunked-wins-over-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
        b"body",
    ),
    "deflate-zlib": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(zlib.compress(b"zlib body"))
        + zlib.compress(b"zlib body"),
        b"zlib body",
    ),
    "deflate-raw": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(RAW_DEFLATE) + RAW_DEFLATE,
        b"raw deflate body",
    ),
    "gzip-two-members": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        % len(gzip.compress(b"one ") + gzip.compress(b"two"))
        + gzip.compress(b"one ")
        + gzip.compress(b"two"),
        b"one two",
    ),
    "unknown-coding": (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 4\r\n\r\nbody", b"body"),
    "folded-header": (b"HTTP/1.1 200 OK\r\nX-Note: a\r\n b\r\nContent-Length: 4\r\n\r\nbody", b"body"),
    "kept-alive": (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", b"body"),
    # Longer than the client preallocates for: received in chunks.
    "beyond-prealloc": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG_BODY_SIZE + b"z" * BIG_BODY_SIZE, None),
}
RESPONSES.update({name: raw for name, (raw, _) in VALID.items()})
ACCEPTED: list[str] = []


@pytest.fixture(scope="module")
def raw_server():
    """Answers each connection with the canned bytes named by the request path, then closes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536).decode("latin-1")
                name = request.split(" ")[1].strip("/") if " " in request else ""
                ACCEPTED.append(name)
                conn.sendall(RESPONSES.get(name, b""))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_response_is_a_clear_fetch_error(raw_server, name):
    with pytest.raises(FetchError) as info:
        Fetcher(policy=LOCAL, timeout=2).fetch(f"{raw_server}/{name}")
    assert (str(info.value), info.value.transient) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(VALID))
def test_each_framing_and_coding_gives_the_body(raw_server, name):
    raw, body = VALID[name]
    if body is None:
        body = raw[raw.index(b"\r\n\r\n") + 4 :]
    assert Fetcher(policy=LOCAL, timeout=5).fetch(f"{raw_server}/{name}") == body


def test_a_kept_alive_connection_the_server_closed_is_replaced(raw_server):
    """The server answers once per connection and closes it while the client keeps it for reuse."""
    fetcher = Fetcher(policy=LOCAL, timeout=2)
    before = ACCEPTED.count("kept-alive")
    assert fetcher.fetch(f"{raw_server}/kept-alive") == b"body"
    assert fetcher.fetch(f"{raw_server}/kept-alive") == b"body"
    assert ACCEPTED.count("kept-alive") - before == 2
