"""A private CA, given as users give it: SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE (issue 22, item 4)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spark_img2ds.net.connect import trust_store
from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy

LOCAL = AddressPolicy(allow_private_networks=True)
VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _pem(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def private_ca(folder):
    """A CA certificate, and a server certificate for localhost signed by it (paths)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spark_img2ds test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False).sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "server.pem").write_bytes(_pem(cert))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"image")


@pytest.fixture(scope="module")
def private_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ca")
    ca, cert, key = private_ca(folder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, ca
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def fetch(server) -> bytes:
    return Fetcher(timeout=5, policy=LOCAL).fetch(f"https://localhost:{server.server_port}/a.jpg")


def test_certifi_alone_does_not_trust_a_private_ca(private_server, clean_env):
    with pytest.raises(FetchError, match="TLS certificate"):
        fetch(private_server[0])


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_variable_is_honoured(private_server, clean_env, variable):
    server, ca = private_server
    clean_env.setenv(variable, str(ca))
    assert fetch(server) == b"image"


def test_a_ca_folder_is_honoured(private_server, clean_env, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl (to hash the CA folder) is not installed")
    server, ca = private_server
    shutil.copy(ca, tmp_path / "ca.pem")
    subprocess.run(["openssl", "rehash", str(tmp_path)], check=True, capture_output=True)
    clean_env.setenv("SSL_CERT_DIR", str(tmp_path))
    assert fetch(server) == b"image"


def test_trust_store_order():
    assert trust_store({}, "/certifi.pem") == ("/certifi.pem", None)
    assert trust_store({"SSL_CERT_FILE": "/a", "REQUESTS_CA_BUNDLE": "/b"}, "/c") == ("/b", None)
    assert trust_store({"SSL_CERT_DIR": "/d"}, "/c") == (None, "/d")
