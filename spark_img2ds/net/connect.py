"""Opening connections: DNS, the address check on every address connected to, TLS."""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Callable, Mapping

from spark_img2ds.net.dns import RESOLVER
from spark_img2ds.net.http1 import Connection


class AddressRefused(OSError):
    """Every address the host name resolved to was refused; the message says why."""


def trust_store(environ: Mapping[str, str], default_bundle: str | None) -> tuple[str | None, str | None]:
    """(CA file, CA folder) to verify servers with, as users set them.

    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (as requests reads them), else OpenSSL's SSL_CERT_FILE
    and SSL_CERT_DIR; with none of them, the default bundle (certifi's).
    """
    bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or environ.get("SSL_CERT_FILE")
    folder = environ.get("SSL_CERT_DIR")
    if bundle or folder:
        return bundle or None, folder or None
    return default_bundle, None


@functools.lru_cache(maxsize=4)
def tls_context(verify: bool, ca_file: str | None, ca_dir: str | None = None) -> ssl.SSLContext:
    """A client context: TLS 1.2+, HTTP/1.1 by ALPN, certificates and host names checked if verify.

    Shared by the threads and tasks of a process (contexts are thread-safe): loading the
    CA bundle costs about 15 ms of CPU, once per Python worker instead of once per task.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if verify:
        if ca_file or ca_dir:
            ctx.load_verify_locations(cafile=ca_file, capath=ca_dir)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_socket(host: str, port: int, timeout: float, refusal: Callable[[str], str | None] | None) -> socket.socket:
    """A TCP connection to the first address of host that refusal allows (None: no refusal).

    The name is resolved here and every address checked before anything is sent to it, so
    the check holds for the address really connected to, whatever DNS answers next time.
    Names are looked up through the process's cache (net/dns.py).
    """
    last: OSError | None = None
    refused: list[str] = []
    for family, kind, proto, _, address in RESOLVER.resolve(host, port):
        reason = refusal(address[0]) if refusal is not None else None
        if reason is not None:
            refused.append(reason)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as err:
            sock.close()
            last = err
    if last is not None:
        raise last
    raise AddressRefused(refused[0] if refused else "no address")


def connect(
    scheme: str,
    host: str,
    port: int,
    timeout: float,
    tls: ssl.SSLContext | None,
    server_name: str,
    refusal: Callable[[str], str | None] | None = None,
    connect_timeout: float | None = None,
) -> Connection:
    """A new connection; TLS for https, with server_name for SNI and the host name check.

    connect_timeout bounds the TCP connect and the TLS handshake (each socket operation of
    them), timeout every later one.
    """
    sock = open_socket(host, port, connect_timeout or timeout, refusal)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            assert tls is not None
            sock = tls.wrap_socket(sock, server_hostname=server_name)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return Connection(sock)
