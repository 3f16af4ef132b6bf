"""A fault-injecting HTTP proxy to sit between an S3 client (s3fs/aiobotocore) and moto's server.

Every request is forwarded to the upstream unchanged (method, path+query, headers, body) and the
response relayed back, unless a fault rule matches it first::

    with S3FaultProxy(moto_endpoint) as proxy:
        fault = proxy.add_fault(kind="upload_part", action="error", times=2)
        ...  # point s3fs at proxy.endpoint
        assert fault.injected == 2

Request kinds are derived from method, path and query: put_object, upload_part, copy_object,
create_multipart, complete_multipart, abort_multipart, list_parts, list_multipart, list, get,
head, delete_object, delete_objects, create_bucket, delete_bucket, head_bucket, other.

Actions: "error" (an S3 XML error response), "reset" (read the request, then RST without a
response), "stall" (wait ``delay`` seconds, then forward as a slow server would; with
``delay=None`` wait until clear()/stop(), which reset the connection instead) and
"drop_after_upstream" (forward, so the upstream applies it, then RST without a response).
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

ACTIONS = ("error", "reset", "stall", "drop_after_upstream")
# Not forwarded in either direction; Content-Length is recomputed, Expect is answered here.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
}
ERROR_CODES = {500: ("InternalError", "injected"), 503: ("SlowDown", "Please reduce your request rate.")}


class LogEntry(NamedTuple):
    """One request the proxy saw; ``outcome`` is the status relayed/sent, or the fault action."""

    method: str
    kind: str
    path: str
    outcome: int | str


@dataclass
class Fault:
    """A rule: the first ``times`` requests matching kind/method/key get ``action``."""

    action: str
    kind: str | None = None
    method: str | None = None
    key: str | None = None  # regex searched in the object key
    times: int = 1
    status: int = 500
    code: str | None = None
    delay: float | None = None  # stall seconds; None stalls until clear() or stop()
    injected: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def matches(self, method: str, kind: str, key: str) -> bool:
        return (
            self.injected < self.times
            and (self.kind is None or self.kind == kind)
            and (self.method is None or self.method == method)
            and (self.key is None or re.search(self.key, key) is not None)
        )


def classify(method: str, path: str, query: str, headers: dict[str, str]) -> tuple[str, str]:
    """The request kind and the object key ('' for bucket-level requests) of a path-style request."""
    q = parse_qs(query, keep_blank_values=True)
    parts = unquote(path).lstrip("/").split("/", 1)
    key = parts[1] if len(parts) > 1 else ""
    copy = "x-amz-copy-source" in headers
    if method == "PUT":
        if "uploadId" in q and "partNumber" in q:
            return ("upload_part_copy" if copy else "upload_part"), key
        if not key:
            return "create_bucket", key
        return ("copy_object" if copy else "put_object"), key
    if method == "POST":
        if "uploads" in q:
            return "create_multipart", key
        if "uploadId" in q:
            return "complete_multipart", key
        return ("delete_objects" if "delete" in q else "other"), key
    if method == "DELETE":
        if "uploadId" in q:
            return "abort_multipart", key
        return ("delete_object" if key else "delete_bucket"), key
    if method == "GET":
        if not key:
            return ("list_multipart" if "uploads" in q else "list"), key
        return ("list_parts" if "uploadId" in q else "get"), key
    if method == "HEAD":
        return ("head" if key else "head_bucket"), key
    return "other", key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet; tests read proxy.log
        pass

    def _handle(self) -> None:
        with self.server.proxy._busy():
            self._proxy_one()

    def _proxy_one(self) -> None:
        proxy = self.server.proxy
        url = urlsplit(self.path)
        kind, key = classify(self.command, url.path, url.query, {k.lower(): v for k, v in self.headers.items()})
        body = self._read_body()
        fault = proxy._take_fault(self.command, kind, key)

        def record(outcome: int | str) -> None:
            proxy._record(LogEntry(self.command, kind, unquote(url.path), outcome))

        if fault is not None:
            record(fault.action)
            if fault.action == "error":
                code, message = ERROR_CODES.get(fault.status, ERROR_CODES[500])
                xml = f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{fault.code or code}</Code>"
                xml += f"<Message>{message}</Message><Resource>{url.path}</Resource></Error>"
                self._respond(fault.status, "Injected", [("Content-Type", "application/xml")], xml.encode())
                return
            # A stall released early by clear()/stop() gives up on the request instead of forwarding it.
            if fault.action == "reset" or (fault.action == "stall" and fault.released.wait(fault.delay)):
                self._reset()
                return
        try:
            status, reason, headers, payload = self._forward(body)
        except OSError:
            status, reason, headers, payload = 502, "Bad Gateway", [], b"upstream unreachable"
        if fault is None:
            record(status)
        elif fault.action == "drop_after_upstream":
            self._reset()
            return
        self._respond(status, reason, headers, payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def _read_body(self) -> bytes:
        """The request body: exactly Content-Length bytes, or the de-chunked Transfer-Encoding body."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after the chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request upstream on a fresh connection; the full response."""
        host, port = self.server.proxy.upstream
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            payload = resp.read()
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            if self.command == "HEAD" and resp.getheader("Content-Length") is not None:
                headers.append(("Content-Length", resp.getheader("Content-Length", "0")))
            elif resp.status not in (204, 304):
                headers.append(("Content-Length", str(len(payload))))
            return resp.status, resp.reason, headers, payload
        finally:
            conn.close()

    def _respond(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if not any(k.lower() == "content-length" for k, _ in headers) and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close abruptly: SO_LINGER 0 makes the kernel send RST instead of FIN."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, proxy: S3FaultProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up (their timeouts, our resets) are expected; stay quiet."""


class S3FaultProxy:
    """Transparent HTTP proxy to ``upstream`` (e.g. "http://127.0.0.1:PORT") with injectable faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream: tuple[str, int] = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: list[Fault] = []
        self.log: list[LogEntry] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> S3FaultProxy:
        self._server = _Server(self)
        serve = self._server.serve_forever
        self._thread = threading.Thread(target=serve, args=(0.05,), name="s3-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled requests are released (and reset)."""
        self.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_fault(
        self,
        kind: str | None = None,
        action: str = "error",
        times: int = 1,
        status: int = 500,
        delay: float | None = None,
        key: str | None = None,
        method: str | None = None,
        code: str | None = None,
    ) -> Fault:
        """Add a rule (None matches anything); returns it so tests can read ``fault.injected``."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        fault = Fault(action, kind, method, key, times, status, code, delay)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget all rules and the request log; requests stalled by a rule are reset."""
        with self._lock:
            for fault in self.faults:
                fault.released.set()
            self.faults.clear()
            self.log.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is in flight (e.g. a stalled one forwarded late); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    @contextmanager
    def _busy(self) -> Iterator[None]:
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    @property
    def injected(self) -> int:
        """How many requests were hit by a fault, over all rules."""
        with self._lock:
            return sum(f.injected for f in self.faults)

    def entries(self, kind: str | None = None) -> list[LogEntry]:
        """A snapshot of the log, optionally only one request kind."""
        with self._lock:
            return [e for e in self.log if kind is None or e.kind == kind]

    def _take_fault(self, method: str, kind: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, kind, key):
                    fault.injected += 1
                    return fault
        return None

    def _record(self, entry: LogEntry) -> None:
        with self._lock:
            self.log.append(entry)
