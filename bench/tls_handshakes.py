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
import datetime as dt
import multiprocessing
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_ca_and_cert(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for localhost, signed by a fresh test CA."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


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
        ca, cert, key = make_ca_and_cert(Path(tmp))
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
