"""bench/web.py: the web scenario's URL plan, DNS answers and delay, and the certificate covering every name."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections import Counter

import pytest

from bench import web

FILES = [f"{i:06d}.jpg" for i in range(100)]


def query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def test_plan_has_the_failure_shares_and_distinct_urls_over_500_names():
    failures = web.parse_failures(web.DEFAULT_FAILURES)
    plan = web.make_plan(FILES, 2000, 600, failures)
    counts = plan.counts()
    assert counts == {"ok": 1500, "404": 180, "403": 100, "nxdomain": 120, "reset": 60, "timeout": 40}
    assert len(set(plan.urls)) == 2000
    assert plan.hosts_used() == 600
    assert sum(1 for k in plan.hosts.values() if k == "live") >= 500
    for url, kind in zip(plan.urls, plan.url_kinds, strict=True):
        host = url.split("/")[2]
        assert plan.hosts[host] == (kind if kind in web.HOST_KINDS else "live")
        assert ("/missing/" in url) == (kind == "404") and ("/private/" in url) == (kind == "403")
    assert plan.urls == web.make_plan(FILES, 2000, 600, failures).urls  # deterministic
    records = plan.records()
    assert all(h not in records for h, k in plan.hosts.items() if k == "nxdomain")
    assert {records[h] for h, k in plan.hosts.items() if k == "timeout"} == {web.HOLD_ADDRESS}
    assert all(a.startswith("127.77.") for a in records.values())  # loopback, even outside the namespace


def test_bad_failure_specs_are_refused():
    with pytest.raises(ValueError, match="unknown failure kind"):
        web.parse_failures("500=3")
    with pytest.raises(ValueError, match="100%"):
        web.parse_failures("404=60,403=40")


def test_dns_answers_a_records_nodata_and_nxdomain():
    records = {"h0001.web.test": "127.77.1.1"}
    response, qtype, outcome = web.dns_answer(query("H0001.web.test"), records)
    assert (qtype, outcome) == ("A", "answer")
    qid, flags, qd, an = struct.unpack("!HHHH", response[:8])
    assert (qid, flags & 0x8000, flags & 0xF, qd, an) == (0x1234, 0x8000, 0, 1, 1)
    assert response[-4:] == socket.inet_aton("127.77.1.1")
    response, qtype, outcome = web.dns_answer(query("h0001.web.test", 28), records)
    assert (qtype, outcome, struct.unpack("!HH", response[6:8] + response[2:4])) == ("AAAA", "nodata", (0, 0x8580))
    response, _, outcome = web.dns_answer(query("gone.web.test"), records)
    assert outcome == "nxdomain" and struct.unpack("!H", response[2:4])[0] & 0xF == 3


def test_dns_server_holds_each_answer_its_delay():
    async def ask() -> tuple[float, bytes, Counter]:
        loop = asyncio.get_running_loop()
        server = web.DnsServer({"h0001.web.test": "127.77.1.1"}, 40, 40)
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            started = time.monotonic()
            await loop.sock_sendto(client, query("h0001.web.test"), ("127.0.0.1", port))
            data = await asyncio.wait_for(loop.sock_recv(client, 512), 5)
            took = time.monotonic() - started
        transport.close()
        return took, data, server.counts

    took, data, counts = asyncio.run(ask())
    assert 0.035 <= took < 1.0
    assert data[-4:] == socket.inet_aton("127.77.1.1")
    assert counts["zone:A:answer"] == 1


@pytest.mark.parametrize("mode", web.CERT_MODES)
def test_the_certificate_covers_every_name_and_chains_to_the_ca(tmp_path, mode):
    names = [web.host_name(i) for i in range(1, 601)]
    ca, cert, key = web.make_certificates(tmp_path, names, mode)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    for name in (names[0], names[-1]):
        left, right = socket.socketpair()
        with left, right:
            server = threading.Thread(target=_handshake, args=(server_ctx, right))
            server.start()
            with client_ctx.wrap_socket(left, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
            server.join(5)
    left, right = socket.socketpair()
    with left, right:
        threading.Thread(target=_handshake, args=(server_ctx, right), daemon=True).start()
        with pytest.raises(ssl.SSLCertVerificationError):
            client_ctx.wrap_socket(left, server_hostname="h0001.elsewhere.test")


def _handshake(ctx: ssl.SSLContext, sock: socket.socket) -> None:
    try:
        ctx.wrap_socket(sock, server_side=True).close()
    except (OSError, ssl.SSLError):
        pass
