"""HTTP servers for the corpus: nginx on a free loopback port, or a small asyncio server.

nginx (Debian's ``nginx-light``) costs little CPU and is the default. The asyncio
server is the fallback when nginx cannot be had, and also serves the latency
scenario: it holds each response for a deterministic pseudo-random 50-300 ms,
which costs almost no CPU while waiting. Both serve ``/r{k}/{file}`` from the
corpus folder, so the k copies of an image are distinct URLs.

Run as ``python -m bench.servers --root DIR [--min-ms 50 --max-ms 300]``: it
prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.procs import REGISTRY, group_cpu_seconds

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
PATH_RE = re.compile(r"^/r\d+/([A-Za-z0-9._-]+)$")
CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@dataclass
class Server:
    """A running server: how to reach it and how much CPU it has used."""

    kind: str  # "nginx" or "python"
    port: int
    proc: object  # subprocess.Popen
    version: str = ""
    delay_ms: tuple[int, int] | None = None

    @property
    def prefix(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def cpu_seconds(self) -> float:
        return group_cpu_seconds([self.proc.pid])

    def stop(self) -> None:
        REGISTRY.stop(self.proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None)


def ensure_nginx(install: bool) -> str | None:
    """The nginx binary; installs Debian's nginx-light with apt-get if allowed and possible."""
    found = nginx_binary()
    if found or not install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("bench: nginx is not installed and apt-get cannot be used here (not root or no apt)", flush=True)
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ("install", "update+install"):
        if attempt == "update+install":
            print("bench: running apt-get update", flush=True)
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        print("bench: nginx not found; running: apt-get install -y nginx-light", flush=True)
        proc = subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env, capture_output=True, text=True)
        if proc.returncode == 0 and nginx_binary():
            return nginx_binary()
        print(f"bench: apt-get install failed: {proc.stderr.strip()[-500:]}", flush=True)
    return None


# What every nginx of the benchmark shares: foreground, one worker, its files under {work},
# no access log, keep-alive without limit. A config is NGINX_HEAD + its own http block's end.
NGINX_HEAD = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    types {{ image/jpeg jpg jpeg; image/png png; image/webp webp; text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
"""

NGINX_CONF = (
    NGINX_HEAD
    + """\
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location ~ ^/r[0-9]+/(.+)$ {{
            alias {images}/$1;
        }}
    }}
}}
"""
)


def start_nginx(binary: str, images: Path, work: Path, probe_file: str) -> Server:
    """nginx in the foreground (daemon off) with its own config under work/."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    last_error = ""
    for _ in range(5):
        port = free_port()
        conf = work / "nginx.conf"
        # As root, the workers would run as "nobody", who may not be able to read the corpus folder.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(user=user, work=work, port=port, images=images.resolve(), connections=8192))
        log = open(work / "nginx-stderr.log", "w")
        proc = REGISTRY.popen(
            [binary, "-p", str(work), "-c", str(conf), "-e", str(work / "nginx-error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        server = Server("nginx", port, proc, version=version)
        if _wait_serving(server, probe_file, proc):
            return server
        REGISTRY.stop(proc)
        last_error = (work / "nginx-stderr.log").read_text()[-2000:] + _tail(work / "nginx-error.log")
    raise RuntimeError(f"nginx did not start: {last_error}")


def _tail(path: Path) -> str:
    return path.read_text()[-2000:] if path.exists() else ""


def start_python_server(images: Path, work: Path, probe_file: str, min_ms: int = 0, max_ms: int = 0) -> Server:
    """The asyncio server of this module in its own process (optionally delaying each response)."""
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / f"pyserver-{min_ms}-{max_ms}.log"
    cmd = [sys.executable, "-m", "bench.servers", "--root", str(images), "--min-ms", str(min_ms)]
    cmd += ["--max-ms", str(max_ms)]
    proc = REGISTRY.popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=open(log_path, "w"),
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("PORT "):
        REGISTRY.stop(proc)
        raise RuntimeError(f"the Python server did not start: {line!r} {_tail(log_path)}")
    server = Server("python", int(line.split()[1]), proc, version=f"asyncio (Python {sys.version.split()[0]})")
    if min_ms or max_ms:
        server.delay_ms = (min_ms, max_ms)
    if not _wait_serving(server, probe_file, proc):
        REGISTRY.stop(proc)
        raise RuntimeError(f"the Python server does not answer: {_tail(log_path)}")
    return server


def _wait_serving(server: Server, probe_file: str, proc, timeout: float = 15.0) -> bool:
    url = f"{server.prefix}r0/{probe_file}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and resp.read():
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def start_static_server(kind: str, install: bool, images: Path, work: Path, probe_file: str) -> Server:
    """nginx (installing it if allowed), else, with a loud warning, the Python server."""
    if kind in ("auto", "nginx"):
        binary = ensure_nginx(install)
        if binary:
            try:
                return start_nginx(binary, images, work / "nginx", probe_file)
            except RuntimeError as err:
                if kind == "nginx":
                    raise
                print(f"bench: {err}", flush=True)
        elif kind == "nginx":
            raise SystemExit("bench: --server nginx was asked for, but nginx is not available")
        print(
            "\n" + "!" * 78 + "\nbench: WARNING: nginx is not available; falling back to a Python server.\n"
            "bench: It uses far more CPU than nginx on the same cores, so both tools' figures are lower\n"
            "bench: than they would be with nginx (install nginx-light for representative numbers).\n"
            + "!" * 78
            + "\n",
            flush=True,
        )
    return start_python_server(images, work / "pyserver", probe_file)


# --- the asyncio server ---------------------------------------------------------


def delay_seconds(path: str, min_ms: int, max_ms: int) -> float:
    """A pseudo-random delay in [min_ms, max_ms], the same for the same path on every run."""
    if max_ms <= 0:
        return 0.0
    frac = int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") / 2**64
    return (min_ms + frac * (max_ms - min_ms)) / 1000.0


class CorpusHandler:
    """Serves /r{k}/{file} from root over HTTP/1.1 keep-alive, optionally delayed."""

    def __init__(self, root: Path, min_ms: int, max_ms: int) -> None:
        self.root = root
        self.min_ms, self.max_ms = min_ms, max_ms
        self.cache: dict[str, bytes | None] = {}

    def body(self, name: str) -> bytes | None:
        if name not in self.cache:
            try:
                self.cache[name] = (self.root / name).read_bytes()
            except OSError:
                self.cache[name] = None
        return self.cache[name]

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                target = parts[1] if len(parts) > 1 else "/"
                path = target.split("?", 1)[0]
                close = any(
                    line.lower().startswith("connection:") and "close" in line.lower() for line in lines[1:]
                ) or (len(parts) > 2 and parts[2] == "HTTP/1.0")
                match = PATH_RE.match(path)
                data = self.body(match.group(1)) if match else None
                delay = delay_seconds(path, self.min_ms, self.max_ms)
                if delay:
                    await asyncio.sleep(delay)
                if data is None:
                    status, data, ctype = "404 Not Found", b"not found\n", "text/plain"
                else:
                    status, ctype = "200 OK", CONTENT_TYPES.get(path.rsplit(".", 1)[-1], "application/octet-stream")
                header = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                )
                writer.write(header.encode("latin-1") + data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def _serve(root: Path, min_ms: int, max_ms: int, port: int) -> None:
    server = await asyncio.start_server(CorpusHandler(root, min_ms, max_ms), "127.0.0.1", port, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, type=Path, help="folder of the image files")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed as 'PORT n')")
    ap.add_argument("--min-ms", type=int, default=0)
    ap.add_argument("--max-ms", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        asyncio.run(_serve(args.root, args.min_ms, args.max_ms, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
