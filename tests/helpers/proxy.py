"""A small forward HTTP proxy on loopback for the tests: absolute-form GETs and CONNECT tunnels.

It records what it was asked for (method and target), can demand Basic credentials,
and relays bytes in both directions for CONNECT, so https through it is real TLS end to end.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
import urllib.parse


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        proxy: ForwardProxy = self.server  # type: ignore[assignment]
        line = self.rfile.readline(65536).decode("latin-1").strip()
        if not line:
            return
        headers = {}
        while True:
            h = self.rfile.readline(65536).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name, _, value = h.partition(":")
            headers[name.strip().lower()] = value.strip()
        method, target, _ = line.split(" ", 2)
        with proxy.lock:
            proxy.requests.append((method, target))
        if proxy.credentials is not None:
            wanted = "Basic " + base64.b64encode(proxy.credentials.encode()).decode()
            if headers.get("proxy-authorization") != wanted:
                self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._relay(self.connection, upstream)
            return
        url = urllib.parse.urlsplit(target)
        upstream = socket.create_connection((url.hostname, url.port or 80), timeout=10)
        path = url.path + (f"?{url.query}" if url.query else "")
        head = [f"{method} {path or '/'} HTTP/1.1", f"Host: {url.netloc}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items() if k not in ("host", "connection", "proxy-authorization")]
        upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self._relay(self.connection, upstream, close_after_upstream=True)

    @staticmethod
    def _relay(client: socket.socket, upstream: socket.socket, close_after_upstream: bool = False) -> None:
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 10)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


class ForwardProxy(socketserver.ThreadingTCPServer):
    """Start with `with ForwardProxy() as proxy:`; proxy.url, proxy.requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.credentials = credentials
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
