"""A local HTTP server over a folder of images, with routes that fail like the web does.

Used by the demo (no internet is assumed), the tests and the benchmark.

Routes (NAME is a file in the folder):
  /img/NAME                 the file
  /status/CODE              an empty response with that status
  /hang/SECONDS             waits, then serves nothing useful (for timeouts)
  /slow/NAME                sends NAME in small pieces, slowly (a total-deadline case)
  /reset                    closes the connection with a TCP reset
  /truncated/NAME           announces the full length, sends half, closes
  /notimage                 a 200 HTML page
  /redirect/N/NAME          a chain of N redirects ending at /img/NAME
  /redirect-loop            redirects forever
  /robots/VALUE/NAME        NAME with the header X-Robots-Tag: VALUE (URL-encoded)
  /corrupt/NAME             NAME with its middle overwritten
  /flaky/ID/NAME            HTTP 500 the first time ID is asked for, then NAME
  /delay/SECONDS/NAME       waits, then serves NAME (a slow but healthy server)
  /goto?url=URL             a redirect to URL (an open redirect, as hostile sites have)
  /big/BYTES/FRAMING        BYTES zeros framed by length, close or chunked (size limits)
  /bomb/BYTES               a small gzip body that inflates to BYTES zeros (Content-Encoding: gzip)
  /drip/SECONDS             announces a megabyte, then drips a byte every 50 ms for SECONDS
  /busy/SECONDS/KEY/NAME    429 with Retry-After: SECONDS the first time KEY is asked for, then NAME
  /tdm/NAME                 NAME with the TDMRep header tdm-reservation: 1

A query string is ignored by the routes, so ?i=N makes distinct URLs for the same
image; ``path_hits`` counts requests per full path, query included, and
``max_delaying`` the most /delay/ requests waiting at once.
"""

from __future__ import annotations

import mimetypes
import os
import socket
import struct
import threading
import time
import urllib.parse
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each response stalls ~40 ms on loopback
    server: SampleServer

    def log_message(self, format: str, *args) -> None:  # quiet: tests read their own output
        pass

    def _send(self, code: int, body: bytes = b"", ctype: str = "application/octet-stream", headers=None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers or ():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, name: str) -> bytes | None:
        return self.server.read(urllib.parse.unquote(name))

    def _image(self, name: str, headers=None) -> None:
        data = self._file(name)
        if data is None:
            self._send(404, b"not found", "text/plain")
            return
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._send(200, data, ctype, headers)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        route, args = parts[0], parts[1:]
        with self.server.lock:
            self.server.hits += 1
            self.server.path_hits[self.path] += 1
        try:
            handler = getattr(self, "route_" + route.replace("-", "_"), None)
            if handler is None:
                self._send(404, b"no such route", "text/plain")
            else:
                handler(*args)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route_img(self, name: str) -> None:
        self._image(name)

    def route_status(self, code: str) -> None:
        self._send(int(code), b"", "text/plain")

    def route_hang(self, seconds: str) -> None:
        time.sleep(float(seconds))
        self._send(503, b"", "text/plain")

    def route_slow(self, name: str) -> None:
        data = self._file(name) or b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        step = max(1, len(data) // 50)
        for i in range(0, len(data), step):
            self.wfile.write(data[i : i + step])
            self.wfile.flush()
            time.sleep(0.1)

    def route_reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def route_truncated(self, name: str) -> None:
        data = self._file(name) or b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def route_notimage(self) -> None:
        self._send(200, b"<html><body>not an image</body></html>", "text/html")

    def route_redirect(self, count: str, name: str) -> None:
        n = int(count)
        target = f"/img/{name}" if n <= 1 else f"/redirect/{n - 1}/{name}"
        self._send(302, b"", "text/plain", [("Location", target)])

    def route_redirect_loop(self) -> None:
        self._send(302, b"", "text/plain", [("Location", "/redirect-loop")])

    def route_robots(self, value: str, name: str) -> None:
        self._image(name, [("X-Robots-Tag", urllib.parse.unquote(value))])

    def route_corrupt(self, name: str) -> None:
        data = bytearray(self._file(name) or b"")
        middle = len(data) // 4
        data[middle:] = b"\x00" * (len(data) - middle)
        data[:2] = b"\x00\x00"
        self._send(200, bytes(data), "image/jpeg")

    def route_delay(self, seconds: str, name: str) -> None:
        with self.server.lock:
            self.server.delaying += 1
            self.server.max_delaying = max(self.server.max_delaying, self.server.delaying)
        try:
            time.sleep(float(seconds))
        finally:
            with self.server.lock:
                self.server.delaying -= 1
        self._image(name)

    def route_goto(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        self._send(302, b"", "text/plain", [("Location", query.get("url", ["/"])[0])])

    def route_big(self, size: str, framing: str = "length") -> None:
        total, block = int(size), bytes(1 << 16)
        self.send_response(200)
        if framing == "length":
            self.send_header("Content-Length", str(total))
        elif framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        while sent < total:
            piece = block[: min(len(block), total - sent)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            sent += len(piece)
        if framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")

    def route_bomb(self, size: str) -> None:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block, left, parts = bytes(1 << 20), int(size), []
        while left > 0:
            parts.append(packer.compress(block[: min(left, len(block))]))
            left -= len(block)
        body = b"".join(parts) + packer.flush()
        self._send(200, body, "image/jpeg", [("Content-Encoding", "gzip")])

    def route_drip(self, seconds: str) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        end = time.monotonic() + float(seconds)
        while time.monotonic() < end:
            self.wfile.write(b"\x00")
            self.wfile.flush()
            time.sleep(0.05)
        self.close_connection = True

    def route_busy(self, seconds: str, key: str, name: str) -> None:
        """429 with Retry-After: SECONDS the first time KEY is asked for, then NAME."""
        with self.server.lock:
            first = key not in self.server.flaky_seen
            self.server.flaky_seen.add(key)
        if first:
            self._send(429, b"", "text/plain", [("Retry-After", seconds)])
        else:
            self._image(name)

    def route_tdm(self, name: str) -> None:
        self._image(name, [("tdm-reservation", "1")])

    def route_flaky(self, key: str, name: str) -> None:
        with self.server.lock:
            first = key not in self.server.flaky_seen
            self.server.flaky_seen.add(key)
        if first:
            self._send(500, b"", "text/plain")
        else:
            self._image(name)


class SampleServer(ThreadingHTTPServer):
    """Serves one folder on 127.0.0.1; use as a context manager or call start()/stop()."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, folder: str | os.PathLike, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.folder = Path(folder)
        self.cache: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.flaky_seen: set[str] = set()
        # /delay/ requests waiting now, and the most at once (reset it to measure); counted around the wait
        # only, which a client's request holds for sure: a finished handler may still be counting down
        self.delaying = 0
        self.max_delaying = 0
        self.hits = 0
        self.path_hits: Counter[str] = Counter()
        self._thread: threading.Thread | None = None

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up (timeouts, resets) are expected here; stay quiet."""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def read(self, name: str) -> bytes | None:
        if "/" in name or name.startswith("."):
            return None
        data = self.cache.get(name)
        if data is None:
            path = self.folder / name
            if not path.is_file():
                return None
            data = self.cache.setdefault(name, path.read_bytes())
        return data

    def start(self) -> SampleServer:
        self._thread = threading.Thread(target=self.serve_forever, name="sample-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> SampleServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
