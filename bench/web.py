"""The web-like scenario: hundreds of HTTPS host names, a local DNS server, delays and failures.

Everything runs inside a network and mount namespace of its own (``unshare -n -m``): the
namespace has only a loopback, and a generated ``resolv.conf`` is bind-mounted over
``/etc/resolv.conf`` there, so the host's network and resolver are never touched. All
addresses are in 127.77.0.0/16 (loopback even outside the namespace).

In the namespace (``python -m bench.web inside ARGV``, started by ``run_bench`` through
``run_scenario``):

- a DNS server of our own (asyncio, UDP, 127.77.0.53:53) answers A records for the live
  host names (spread over 16 addresses 127.77.1.1-16), NXDOMAIN for the dead ones and
  NODATA for AAAA, each answer held a pseudo-random 10-30 ms (a resolver's lookup), and
  counts the queries;
- nginx serves HTTPS for every name (one certificate naming them all, from a test CA) and
  hands each request to a delay gate (asyncio, on a Unix socket) that holds it 50-300 ms
  (the same delay for the same URL on every run) and answers with X-Accel-Redirect, so
  nginx itself sends the image; the gate also answers the 404 and 403 paths;
- two listeners stand for broken hosts: one accepts and never answers (timeouts), one
  reads the ClientHello and resets the connection;
- both tools download the same URL list, alternating which goes first, with the CA handed
  through SSL_CERT_FILE and REQUESTS_CA_BUNDLE (and spark_img2ds's allow_private_networks,
  since the names resolve to loopback addresses).

``python -m bench.web backend --config FILE`` runs the asyncio services (DNS, gate, the
broken-host listeners); it prints ``READY`` once they listen.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import REGISTRY, group_cpu_seconds, raise_interrupt
from bench.servers import CONTENT_TYPES, NGINX_HEAD, delay_seconds, nginx_binary

REPO = Path(__file__).resolve().parent.parent
ZONE = "web.test"
DNS_ADDRESS = "127.77.0.53"
LIVE_ADDRESSES = [f"127.77.1.{i}" for i in range(1, 17)]
HOLD_ADDRESS = "127.77.3.1"  # accepts and never answers: the timeouts
RESET_ADDRESS = "127.77.4.1"  # reads the ClientHello, then resets: the resets
HOST_KINDS = ("nxdomain", "reset", "timeout")  # failures of a whole host
PATH_KINDS = {"404": "missing", "403": "private"}  # failures of one URL on a live host: its path prefix
KINDS = ("404", "403", *HOST_KINDS)
DEFAULT_FAILURES = "404=9,403=5,nxdomain=6,reset=3,timeout=2"
ZIPF_EXPONENT = 0.8  # URLs per host fall as rank^-0.8: a few big hosts, a long tail
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


# --- the plan: host names, their kind, the URL list -----------------------------------


def parse_failures(spec: str) -> dict[str, float]:
    """'404=9,403=5,...' (percent of the URLs) -> {kind: fraction}."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        kind, _, pct = part.partition("=")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r} (known: {', '.join(KINDS)})")
        out[kind] = float(pct) / 100
    if sum(out.values()) >= 1:
        raise ValueError("the failure shares add up to 100% or more")
    return out


@dataclass
class Plan:
    """The host names and their kind (live or a HOST_KINDS), the URLs and the kind of each."""

    hosts: dict[str, str]
    urls: list[str]
    url_kinds: list[str]  # "ok" or a KINDS entry

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.url_kinds))

    def records(self) -> dict[str, str]:
        """DNS: name -> address; the nxdomain names are absent."""
        live = [h for h, k in self.hosts.items() if k == "live"]
        out = {h: LIVE_ADDRESSES[i % len(LIVE_ADDRESSES)] for i, h in enumerate(live)}
        out.update({h: HOLD_ADDRESS for h, k in self.hosts.items() if k == "timeout"})
        out.update({h: RESET_ADDRESS for h, k in self.hosts.items() if k == "reset"})
        return out

    def hosts_used(self) -> int:
        return len({u.split("/")[2] for u in self.urls})


def host_name(i: int) -> str:
    return f"h{i:04d}.{ZONE}"


def _zipf_draw(rng: random.Random, pool: list[str], k: int) -> list[str]:
    """k hosts of pool: each once (while k allows), the rest drawn with weight rank^-ZIPF_EXPONENT."""
    first = pool[:k]
    rest = k - len(first)
    weights = [1 / (r**ZIPF_EXPONENT) for r in range(1, len(pool) + 1)]
    return first + (rng.choices(pool, weights, k=rest) if rest > 0 else [])


def make_plan(files: list[str], n_urls: int, n_hosts: int, failures: dict[str, float], seed: int = 0) -> Plan:
    """A deterministic URL list over n_hosts names, with the failure shares asked for.

    Host-level failures (NXDOMAIN, reset, timeout) get their own pool of names (a share of
    the names like their share of the URLs, at least 2); URLs are drawn within a pool with
    Zipf-like weights, after every name of the pool got one URL. URL i fetches corpus file
    i % len(files) under /r{i // len(files)}/, so every URL is distinct.
    """
    rng = random.Random(seed)
    names = [host_name(i) for i in range(1, n_hosts + 1)]
    rng.shuffle(names)
    pools: dict[str, list[str]] = {}
    at = 0
    for kind in HOST_KINDS:
        share = failures.get(kind, 0.0)
        if share <= 0:
            continue
        size = max(2, round(n_hosts * share))
        pools[kind] = names[at : at + size]
        at += size
    pools["live"] = names[at:]
    if len(pools["live"]) < 1:
        raise ValueError("no live hosts left: more hosts are needed")
    hosts = {h: kind for kind, pool in pools.items() for h in pool}
    url_kinds: list[str] = []
    for kind in KINDS:
        url_kinds += [kind] * round(n_urls * failures.get(kind, 0.0))
    url_kinds += ["ok"] * (n_urls - len(url_kinds))
    rng.shuffle(url_kinds)
    wanted = Counter("live" if k in ("ok", *PATH_KINDS) else k for k in url_kinds)
    draws = {pool: _zipf_draw(rng, pools[pool], n) for pool, n in wanted.items()}
    for seq in draws.values():
        rng.shuffle(seq)
    urls = []
    n = len(files)
    for i, kind in enumerate(url_kinds):
        host = draws["live" if kind in ("ok", *PATH_KINDS) else kind].pop()
        prefix = f"/{PATH_KINDS[kind]}" if kind in PATH_KINDS else ""
        urls.append(f"https://{host}{prefix}/r{i // n}/{files[i % n]}")
    return Plan(hosts=hosts, urls=urls, url_kinds=url_kinds)


# --- the test CA and the server certificate -------------------------------------------


CERT_MODES = ("wildcard", "sans")


def make_certificates(folder: Path, names: list[str], mode: str = "wildcard") -> tuple[Path, Path, Path]:
    """(root CA certificate, server chain, server key), all ECDSA P-256: root -> intermediate -> server.

    The server certificate covers every name: mode "wildcard" with one *.ZONE name (the
    chain is 1.4 KB, as a site's usually is), "sans" with one name per host (14 KB for 600
    names: each client handshake parses and matches it, measured 0.25-0.4 ms more CPU per
    handshake in Python). The server sends its certificate and the intermediate, as public
    sites do; the clients trust the root only.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if mode not in CERT_MODES:
        raise ValueError(f"unknown certificate mode {mode!r} (known: {', '.join(CERT_MODES)})")
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    def build(subject: str, key, issuer: x509.Name, issuer_key, issuer_ski, ca: bool, path_length=None, extra=()):
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
            .add_extension(  # CAs: keyCertSign and cRLSign; the server: digitalSignature
                x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False), critical=True
            )
            .add_extension(ski, critical=False)
        )
        if issuer_ski is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
            )
        for ext in extra:
            builder = builder.add_extension(ext, critical=False)
        return builder.sign(issuer_key, hashes.SHA256()), ski

    root_key, mid_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench web-scenario test root CA")])
    root, root_ski = build("bench web-scenario test root CA", root_key, root_name, root_key, None, True, 1)
    mid, mid_ski = build("bench web-scenario test intermediate CA", mid_key, root_name, root_key, root_ski, True, 0)
    sans = [f"*.{ZONE}"] if mode == "wildcard" else names
    leaf, _ = build(
        sans[0],
        key,
        mid.subject,
        mid_key,
        mid_ski,
        False,
        None,
        [
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]),
        ],
    )
    ca_file, chain_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    pem = serialization.Encoding.PEM
    ca_file.write_bytes(root.public_bytes(pem))
    chain_file.write_bytes(leaf.public_bytes(pem) + mid.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_file, chain_file, key_file


# --- DNS: a small authoritative server with a lookup delay ---------------------------

QTYPES = {1: "A", 28: "AAAA"}


def parse_query(data: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, qtype, end of the question) of a DNS query; ValueError if malformed."""
    if len(data) < 12:
        raise ValueError("short")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount < 1:
        raise ValueError("no question")
    labels, at = [], 12
    while True:
        if at >= len(data):
            raise ValueError("truncated name")
        length = data[at]
        at += 1
        if length == 0:
            break
        if length > 63:
            raise ValueError("compressed or bad label")
        labels.append(data[at : at + length].decode("ascii", "replace"))
        at += length
    if at + 4 > len(data):
        raise ValueError("truncated question")
    qtype, _ = struct.unpack("!HH", data[at : at + 4])
    return qid, flags, ".".join(labels).lower(), qtype, at + 4


def dns_answer(data: bytes, records: dict[str, str], ttl: int = 300) -> tuple[bytes, str, str]:
    """(response, qtype name, outcome) for a query: A records from records, NODATA for other
    types of a known name, NXDOMAIN for unknown names."""
    qid, flags, name, qtype, end = parse_query(data)
    question = data[12:end]
    address = records.get(name)
    rd = flags & 0x0100
    if address is None:
        rcode, answers, outcome = 3, b"", "nxdomain"
    elif qtype == 1:
        rdata = socket.inet_aton(address)
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, len(rdata)) + rdata
        rcode, outcome = 0, "answer"
    else:
        rcode, answers, outcome = 0, b"", "nodata"
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, 1 if answers else 0, 0, 0)
    return header + question + answers, QTYPES.get(qtype, "other"), outcome


class DnsServer(asyncio.DatagramProtocol):
    """Answers each query after a pseudo-random delay in [min_ms, max_ms]; counts them."""

    def __init__(self, records: dict[str, str], min_ms: float, max_ms: float, seed: int = 0) -> None:
        self.records = records
        self.min_ms, self.max_ms = min_ms, max_ms
        self.rng = random.Random(seed)
        self.counts: Counter = Counter()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            response, qtype, outcome = dns_answer(data, self.records)
            name = parse_query(data)[2]
        except ValueError:
            self.counts["malformed"] += 1
            return
        zone = "zone" if name == ZONE or name.endswith("." + ZONE) else "outside"
        self.counts[f"{zone}:{qtype}:{outcome}"] += 1
        self.counts[zone] += 1
        delay = self.rng.uniform(self.min_ms, self.max_ms) / 1000
        asyncio.get_running_loop().call_later(delay, self._send, response, addr)

    def _send(self, response: bytes, addr) -> None:
        if self.transport is not None:
            self.transport.sendto(response, addr)


# --- the delay gate behind nginx, and the broken hosts --------------------------------

GATE_PATH = re.compile(r"^(?:/(missing|private))?/r\d+/([A-Za-z0-9._-]+)$")
ERROR_BODY = "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>\n"


class Backend:
    """The asyncio services of the namespace and their counters."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.counts: Counter = Counter()
        self.dns = DnsServer(config["records"], config["dns_min_ms"], config["dns_max_ms"])

    async def gate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """nginx's upstream: holds each request its delay, then 200 + X-Accel-Redirect, 404 or 403."""
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                lines = head.split("\r\n")
                target = lines[0].split(" ")[1] if " " in lines[0] else "/"
                path = target.split("?", 1)[0]
                if path == "/_stats":
                    self._reply(writer, "200 OK", json.dumps(self.stats()).encode(), "application/json")
                    await writer.drain()
                    continue
                host = next((x.split(":", 1)[1].strip() for x in lines[1:] if x.lower().startswith("host:")), "")
                delay = delay_seconds(host + path, self.config["min_ms"], self.config["max_ms"])
                if delay:
                    await asyncio.sleep(delay)
                match = GATE_PATH.match(path)
                if match is None or match[1] == "missing":
                    self.counts["gate:404"] += 1
                    self._reply(writer, "404 Not Found", ERROR_BODY.format("404 Not Found").encode(), "text/html")
                elif match[1] == "private":
                    self.counts["gate:403"] += 1
                    self._reply(writer, "403 Forbidden", ERROR_BODY.format("403 Forbidden").encode(), "text/html")
                else:
                    self.counts["gate:200"] += 1
                    ctype = CONTENT_TYPES.get(match[2].rsplit(".", 1)[-1], "application/octet-stream")
                    writer.write(
                        f"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /_files/{match[2]}\r\nContent-Type: {ctype}\r\n"
                        "Content-Length: 0\r\n\r\n".encode("latin-1")
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: str, body: bytes, ctype: str) -> None:
        head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode("latin-1") + body)

    async def hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A host that accepts and never answers: the client's read times out."""
        self.counts["hold:connections"] += 1
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A host that reads the start of the ClientHello, then resets the connection (RST)."""
        self.counts["reset:connections"] += 1
        try:
            await reader.read(1)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except ConnectionError:
            pass
        writer.transport.abort()

    def stats(self) -> dict:
        return {"dns": dict(self.dns.counts), **{k: v for k, v in self.counts.items()}}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.dns, local_addr=(DNS_ADDRESS, 53))
        sock_path = self.config["gate_socket"]
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        servers = [
            await asyncio.start_unix_server(self.gate, sock_path, backlog=4096),
            await asyncio.start_server(self.hold, HOLD_ADDRESS, 443, backlog=4096),
            await asyncio.start_server(self.reset, RESET_ADDRESS, 443, backlog=4096),
        ]
        print("READY", flush=True)
        await asyncio.gather(*(s.serve_forever() for s in servers))


# --- nginx ---------------------------------------------------------------------------

NGINX_CONF = (
    NGINX_HEAD
    + """\
    upstream gate {{
        server unix:{gate};
        keepalive 512;
    }}
    server {{
{listens}
        server_name *.{zone};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location /_files/ {{
            internal;
            alias {images}/;
        }}
        location / {{
            proxy_pass http://gate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 60s;
        }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location = /status {{ stub_status; }}
    }}
}}
"""
)


@dataclass
class WebServers:
    """nginx and the backend process: their CPU counts as the server's (srv ms/img)."""

    nginx: subprocess.Popen
    backend: subprocess.Popen
    gate_socket: str
    status_port: int
    version: str = ""
    kind: str = "nginx+web"

    def cpu_seconds(self) -> float:
        return group_cpu_seconds([self.nginx.pid, self.backend.pid])

    def stop(self) -> None:
        REGISTRY.stop(self.nginx)
        REGISTRY.stop(self.backend)

    def snapshot(self) -> dict:
        """Counters now: the backend's (DNS, gate, broken hosts) and nginx's (connections, requests)."""
        out = dict(_unix_get(self.gate_socket, "/_stats"))
        out["cpu_ms:nginx"] = round(1000 * group_cpu_seconds([self.nginx.pid]))
        out["cpu_ms:backend"] = round(1000 * group_cpu_seconds([self.backend.pid]))
        conn = socket.create_connection(("127.0.0.1", self.status_port), timeout=5)
        with conn:
            conn.sendall(b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n")
            text = _read_all(conn).decode("latin-1")
        numbers = re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", text)
        if numbers:
            out["nginx:accepts"], out["nginx:handled"], out["nginx:requests"] = map(int, numbers.groups())
        return out


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _unix_get(path: str, target: str) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: stats\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])
        while len(body) < length:
            body += sock.recv(65536)
    return json.loads(body)


def diff(before: dict, after: dict) -> dict:
    """after - before of two snapshots (flattening the DNS counters as dns:...)."""

    def flat(snap: dict) -> dict:
        out = {k: v for k, v in snap.items() if k != "dns"}
        out.update({f"dns:{k}": v for k, v in snap.get("dns", {}).items()})
        return out

    a, b = flat(after), flat(before)
    return {k: a[k] - b.get(k, 0) for k in sorted(a) if a[k] - b.get(k, 0)}


def start_servers(work: Path, images: Path, cert: Path, key: Path, plan: Plan, args: argparse.Namespace) -> WebServers:
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("bench: web scenario: nginx is needed (install nginx-light) and was not found")
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    gate = str(work / "gate.sock")
    config = {
        "records": plan.records(),
        "dns_min_ms": args.web_dns_min_ms,
        "dns_max_ms": args.web_dns_max_ms,
        "min_ms": args.web_min_ms,
        "max_ms": args.web_max_ms,
        "gate_socket": gate,
    }
    (work / "backend.json").write_text(json.dumps(config))
    backend = REGISTRY.popen(
        [sys.executable, "-m", "bench.web", "backend", "--config", str(work / "backend.json")],
        stdout=subprocess.PIPE,
        stderr=open(work / "backend.log", "w"),
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=str(REPO),
    )
    line = backend.stdout.readline().strip()
    if line != "READY":
        REGISTRY.stop(backend)
        log = (work / "backend.log").read_text()[-2000:]
        raise RuntimeError(f"bench: the web backend did not start: {line!r} {log}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        status_port = s.getsockname()[1]
    listens = "\n".join(f"        listen {a}:443 ssl backlog=4096;" for a in LIVE_ADDRESSES)
    conf = work / "nginx.conf"
    user = "user root root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(
            user=user,
            work=work,
            gate=gate,
            listens=listens,
            zone=ZONE,
            cert=cert,
            key=key,
            images=images.resolve(),
            status_port=status_port,
            connections=16384,
        )
    )
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    nginx = REGISTRY.popen(
        [binary, "-p", str(work), "-c", str(conf), "-e", str(work / "nginx-error.log")],
        stdout=open(work / "nginx-stderr.log", "w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    servers = WebServers(nginx, backend, gate, status_port, version=version)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            break
        try:
            servers.snapshot()
            return servers
        except OSError:
            time.sleep(0.1)
    servers.stop()
    raise RuntimeError(f"bench: nginx did not start: {(work / 'nginx-error.log').read_text()[-2000:]}")


def probe(plan: Plan, ca: Path) -> dict:
    """One URL of each kind, fetched the way a client would; the outcome of each (a sanity check)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    out = {}
    for kind in ("ok", *KINDS):
        if kind not in plan.url_kinds:
            continue
        url = plan.urls[plan.url_kinds.index(kind)]
        host, path = url.split("/", 3)[2], "/" + url.split("/", 3)[3]
        started = time.monotonic()
        try:
            conn = http.client.HTTPSConnection(host, 443, timeout=2, context=ctx)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            outcome = f"{resp.status} ({len(body)} bytes)"
        except (OSError, http.client.HTTPException) as err:
            outcome = f"{type(err).__name__}: {err}"
        out[kind] = f"{outcome} in {1000 * (time.monotonic() - started):.0f} ms"
    return out


# --- inside the namespace: the rounds ------------------------------------------------


def isolated() -> str | None:
    """None when this process is in a network namespace with only a loopback; else what is wrong."""
    names = sorted(name for _, name in socket.if_nameindex())
    return None if names == ["lo"] else f"network interfaces {names}: not an isolated namespace"


@dataclass
class WebRun:
    """A run's figures from the servers' counters."""

    stats: dict = field(default_factory=dict)

    def per_url(self, urls: int) -> dict:
        s = self.stats
        zone = s.get("dns:zone", 0)
        return {
            "dns_queries_per_url": round(zone / urls, 3),
            "dns_a_per_url": round(sum(v for k, v in s.items() if k.startswith("dns:zone:A:")) / urls, 3),
            "dns_aaaa_per_url": round(sum(v for k, v in s.items() if k.startswith("dns:zone:AAAA:")) / urls, 3),
            "dns_outside_zone": s.get("dns:outside", 0),
            "tls_connections_per_url": round(max(0, s.get("nginx:accepts", 0) - 1) / urls, 3),
            "requests_per_connection": round(
                max(0, s.get("nginx:requests", 0) - 1) / max(1, s.get("nginx:accepts", 0) - 1), 2
            ),
            "timeout_host_connections": s.get("hold:connections", 0),
            "reset_host_connections": s.get("reset:connections", 0),
            "nginx_cpu_ms_per_url": round(s.get("cpu_ms:nginx", 0) / urls, 3),
            "backend_cpu_ms_per_url": round(s.get("cpu_ms:backend", 0) / urls, 3),
        }


def inside(argv: list[str]) -> int:
    """The scenario, in the namespace: servers, rounds, results written to OUT/web/runs.json."""
    from bench import corpus as corpus_mod
    from bench.procs import become_subreaper
    from bench.run_bench import Bench, parse_args
    from bench.runners import JobOptions, ensure_img2dataset

    problem = isolated()
    if problem:
        raise SystemExit(f"bench: web scenario refuses to run: {problem}")
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGHUP, raise_interrupt)
    become_subreaper()
    work = args.out_dir / "web"
    try:
        corpus = corpus_mod.ensure_corpus(args.out_dir, args.corpus_size, args.seed, args.make_corpus)
        failures = parse_failures(args.web_failures)
        plan = make_plan([e["file"] for e in corpus.entries], args.web_urls, args.web_hosts, failures, args.seed)
        ca, cert, key = make_certificates(work / "tls", sorted(plan.hosts), args.web_cert)
        url_list = corpus_mod.write_url_list(args.out_dir / "lists" / "web.txt", plan.urls)
        for var in PROXY_VARS:
            os.environ.pop(var, None)
        os.environ.update(
            {"SSL_CERT_FILE": str(ca), "REQUESTS_CA_BUNDLE": str(ca), "SPARK_LOCAL_HOSTNAME": "localhost"}
        )
        servers = start_servers(work, corpus.images, cert, key, plan, args)
        counts = plan.counts()
        print(
            f"bench: web: {len(plan.urls)} URLs over {plan.hosts_used()} host names "
            f"({sum(1 for k in plan.hosts.values() if k == 'live')} live), expected successes {counts.get('ok', 0)}; "
            "URLs by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
            flush=True,
        )
        print("bench: web: probe: " + "; ".join(f"{k}: {v}" for k, v in probe(plan, ca).items()), flush=True)
        bench = Bench(args)
        bench.expected_ok["web"] = counts.get("ok", 0) / max(1, len(plan.urls))
        if not args.skip_theirs:
            bench.theirs_bin = ensure_img2dataset(args.out_dir / "img2dataset-venv", args.img2dataset_version)
        shard = min(args.shard_size, -(-args.web_urls // args.processes))
        extra: dict[str, dict] = {}
        for rnd in range(1, args.web_rounds + 1):
            for tool in ["theirs", "ours"] if rnd % 2 else ["ours", "theirs"]:
                if tool == "theirs" and args.skip_theirs:
                    continue
                opts = JobOptions(args.processes, args.web_threads, shard)
                before = servers.snapshot()
                result = bench.one(tool, "web", str(rnd), url_list, len(plan.urls), opts, servers)
                run = WebRun(diff(before, servers.snapshot()))
                figures = run.per_url(len(plan.urls))
                extra[f"{tool}-{rnd}"] = {**figures, "counters": run.stats}
                errors = ", ".join(f"{k[:60]}: {v}" for k, v in list(result.error_counts.items())[:5])
                print(
                    f"   web: DNS queries/URL {figures['dns_queries_per_url']:.2f} (A {figures['dns_a_per_url']:.2f}, "
                    f"AAAA {figures['dns_aaaa_per_url']:.2f}), TLS connections/URL "
                    f"{figures['tls_connections_per_url']:.2f}, requests/connection "
                    f"{figures['requests_per_connection']:.2f}; server CPU ms/URL: nginx "
                    f"{figures['nginx_cpu_ms_per_url']:.2f}, gate+DNS {figures['backend_cpu_ms_per_url']:.2f}; "
                    f"errors: {errors or '-'}",
                    flush=True,
                )
        servers.stop()
        out = {
            "runs": [r.to_json() for r in bench.runs],
            "per_run": extra,
            "plan": {
                "urls": len(plan.urls),
                "hosts": len(plan.hosts),
                "hosts_used": plan.hosts_used(),
                "live_hosts": sum(1 for k in plan.hosts.values() if k == "live"),
                "url_kinds": counts,
                "failures": failures,
                "shard_size": shard,
                "nginx": servers.version,
                "certificate": args.web_cert,
            },
        }
        (work / "runs.json").write_text(json.dumps(out, indent=1))
        return 0
    except KeyboardInterrupt:
        print("\nbench: web scenario interrupted; stopping its processes", flush=True)
        return 130
    finally:
        REGISTRY.stop_all()


# --- from run_bench: start the namespace, read the results ----------------------------


def namespace_problem() -> str | None:
    """Why the scenario cannot run here, or None."""
    if os.geteuid() != 0:
        return "it needs root (unshare -n -m, a bind mount over /etc/resolv.conf)"
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    probe_ns = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
    if probe_ns.returncode != 0:
        return f"cannot create namespaces here: {probe_ns.stderr.strip()[:200]}"
    if nginx_binary() is None:
        return "nginx is not installed"
    return None


def run_scenario(args: argparse.Namespace, argv: list[str]) -> dict | None:
    """Run the scenario in a new network and mount namespace; its runs and figures, or None if it could not run."""
    problem = namespace_problem()
    if problem:
        print(f"bench: web scenario skipped: {problem}", flush=True)
        return None
    work = args.out_dir / "web"
    work.mkdir(parents=True, exist_ok=True)
    results = work / "runs.json"
    if results.exists():
        results.unlink()
    resolv = work / "resolv.conf"
    resolv.write_text(
        f"# the web scenario's DNS server (bench/web.py)\nnameserver {DNS_ADDRESS}\noptions timeout:2 attempts:2\n"
    )
    script = "; ".join(
        [
            "set -e",
            "ip link set lo up",
            f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
            f"exec {shlex.quote(sys.executable)} -m bench.web inside " + " ".join(shlex.quote(a) for a in argv),
        ]
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    cmd = ["unshare", "-n", "-m", "--propagation", "private", "bash", "-c", script]
    proc = REGISTRY.popen(cmd, cwd=str(REPO), env=env)
    code = proc.wait()
    REGISTRY.stop(proc)
    if code != 0 or not results.exists():
        print(f"bench: web scenario failed (exit code {code})", flush=True)
        return None
    return json.loads(results.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inside"]:
        return inside(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench.web backend")
    ap.add_argument("command", choices=("backend",))
    ap.add_argument("--config", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        asyncio.run(Backend(json.loads(args.config.read_text())).serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
