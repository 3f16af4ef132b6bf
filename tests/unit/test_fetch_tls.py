"""HTTPS from a real TLS server with a self-signed certificate: verified by default, usable when told."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy

# The tests serve from loopback, which the default policy refuses (tests/unit/test_fetch_security.py).
LOCAL = AddressPolicy(allow_private_networks=True)


def self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and localhost that no CA has signed, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.clients.append(self.client_address)
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, image_dir):
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.body = (image_dir / "china.jpg").read_bytes()
    srv.clients = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_an_unverifiable_certificate_is_a_permanent_tls_error(tls_server):
    with pytest.raises(FetchError) as info:
        Fetcher(policy=LOCAL, timeout=5).fetch(f"https://127.0.0.1:{tls_server.server_port}/a.jpg")
    assert (str(info.value), info.value.transient) == ("TLS certificate or handshake error", False)


def test_without_verification_https_gives_the_bytes_on_one_kept_connection(tls_server):
    fetcher = Fetcher(policy=LOCAL, timeout=5, verify_ssl=False)
    before = len(tls_server.clients)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        assert fetcher.fetch(f"https://localhost:{tls_server.server_port}/{name}") == tls_server.body
    clients = tls_server.clients[before:]
    assert len(clients) == 3 and len(set(clients)) == 1


def test_tasks_share_one_tls_context_per_verification_mode():
    """Loading the CA bundle costs ~15 ms: a process does it once, not once per task's Fetcher."""
    verified, again, unverified = (
        Fetcher(policy=LOCAL, timeout=1),
        Fetcher(policy=LOCAL, timeout=1),
        Fetcher(policy=LOCAL, timeout=1, verify_ssl=False),
    )
    assert verified._tls is again._tls  # noqa: SLF001
    assert verified._tls.verify_mode == ssl.CERT_REQUIRED and verified._tls.check_hostname  # noqa: SLF001
    assert unverified._tls.verify_mode == ssl.CERT_NONE  # noqa: SLF001


def test_threads_share_kept_alive_connections(tls_server):
    """A connection one thread left is used by the next thread to that server: no new handshake."""
    fetcher = Fetcher(policy=LOCAL, timeout=5, verify_ssl=False)
    url = f"https://localhost:{tls_server.server_port}/a.jpg"
    before = len(tls_server.clients)
    for _ in range(4):
        worker = threading.Thread(target=fetcher.fetch, args=(url,))
        worker.start()
        worker.join()
    assert len(tls_server.clients) - before == 4 and len(set(tls_server.clients[before:])) == 1
