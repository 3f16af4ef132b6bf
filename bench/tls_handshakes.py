"""Client CPU of an HTTPS GET on a new connection against one on a kept-alive connection.

What sharing kept-alive connections between a task's threads could save on lists of many
hosts, where a thread's own pool rarely holds a connection to the next URL's host. A test CA
signs a certificate for localhost (handed over through REQUESTS_CA_BUNDLE / SSL_CERT_FILE); a
TLS server runs in a child process (its CPU is not counted); spark_img2ds's Fetcher GETs a
small body N times from fresh threads (each a new connection: TCP, a full TLS handshake,
certificate checks) and N times from one thread (one kept-alive connection). Prints CPU ms
per GET and the ratio.

    python -m bench.tls_handshakes [--connections 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.web import make_certificates


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = b"x" * 2048
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(cert: str, key: str, port_box) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port_box.put(srv.server_port)
    srv.serve_forever()


def measure(fetcher, url: str, gets: int, new_connections: bool) -> float:
    """CPU seconds of this process per GET: each from a fresh thread (a new connection), or all from one."""
    fetcher.fetch(url)
    start = time.process_time()
    for _ in range(gets):
        if new_connections:
            t = threading.Thread(target=fetcher.fetch, args=(url,))
            t.start()
            t.join()
        else:
            fetcher.fetch(url)
    return (time.process_time() - start) / gets


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=300)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ca, cert, key = make_certificates(Path(tmp), ["localhost"], mode="sans")  # root, chain, key
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):  # as a user sets them
            os.environ[name] = str(ca)
        from spark_img2ds.net.fetch import Fetcher
        from spark_img2ds.net.policy import AddressPolicy

        box = multiprocessing.Queue()
        server = multiprocessing.Process(target=serve, args=(str(cert), str(key), box), daemon=True)
        server.start()
        url = f"https://localhost:{box.get(timeout=30)}/x"
        policy = AddressPolicy(allow_private_networks=True)
        try:
            results = {}
            for label, new in (("new connection", True), ("kept-alive", False)):
                results[label] = measure(Fetcher(timeout=10, policy=policy), url, args.connections, new)
        finally:
            server.terminate()
    new, kept = results["new connection"], results["kept-alive"]
    for label, value in results.items():
        print(f"{label:>15}: {1000 * value:.2f} ms CPU per HTTPS GET")
    print(f"ratio: a GET on a new connection costs {new / kept:.1f}x one on a kept-alive connection")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
