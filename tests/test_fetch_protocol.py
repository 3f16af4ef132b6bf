"""Malformed HTTP from a real raw-socket server: every case is a FetchError with a clear message."""

from __future__ import annotations

import socket
import threading

import pytest

from spark_img2ds.fetch import Fetcher, FetchError

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
}


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
                conn.sendall(RESPONSES.get(name, b""))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_malformed_response_is_a_clear_fetch_error(raw_server, name):
    with pytest.raises(FetchError) as info:
        Fetcher(timeout=2).fetch(f"{raw_server}/{name}")
    assert (str(info.value), info.value.transient) == EXPECTED[name]
