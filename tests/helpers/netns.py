"""Running code inside a network namespace of its own, with metadata and private addresses on its loopback.

`unshare -n -m` gives a private network (only a loopback, which the test brings up and
binds the addresses below to) and a private mount table (for a private /etc/hosts). A
listener on each address counts its connections, so a regression shows as a hit there,
never as a packet on the host's network.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# address bound in the namespace -> the class the policy must name
TARGETS = {
    "169.254.169.254": "metadata",
    "100.100.100.200": "metadata",
    "fd00:ec2::254": "metadata",
    "169.254.10.10": "link-local",
    "10.0.0.5": "private",
    "192.168.7.7": "private",
    "100.64.1.1": "shared",
}


def host_name(address: str) -> str:
    """The name the namespace's /etc/hosts gives an address, e.g. 169-254-169-254.test."""
    return address.replace(":", "-").replace(".", "-") + ".test"


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is missing"
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create network namespaces here: {probe.stderr.strip()[:200]}"
    return None


def run(work: Path, script: str, extra_hosts: tuple[str, ...] = (), timeout: float = 300) -> dict:
    """Run a Python script in a fresh namespace with TARGETS bound; returns the JSON it prints after RESULT."""
    hosts = work / "hosts"
    lines = [f"{a} {host_name(a)}" for a in TARGETS] + list(extra_hosts)
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n" + "\n".join(lines) + "\n")
    (work / "script.py").write_text(script)
    setup = ["ip link set lo up"]
    setup += [f"ip {'-6 ' if ':' in a else ''}addr add {a}/{128 if ':' in a else 32} dev lo" for a in TARGETS]
    setup += [f"mount --bind {hosts} /etc/hosts", "export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=localhost"]
    setup += [f"export PYTHONPATH={ROOT}"]  # the script imports tests.helpers
    setup += [f"exec {sys.executable} {work / 'script.py'} {work}"]
    proc = subprocess.run(
        ["unshare", "-n", "-m", "bash", "-ec", "; ".join(setup)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-4000:]
    return json.loads(line[len("RESULT ") :])


def start_listeners(body: bytes) -> dict[str, int]:
    """Inside the namespace: a listener on port 80 of each TARGETS address answering 200 with body; the hit counts."""
    hits = {a: 0 for a in TARGETS}
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    def serve(sock: socket.socket, address: str) -> None:
        while True:
            conn, _ = sock.accept()
            hits[address] += 1
            conn.sendall(response)
            conn.close()

    for address in TARGETS:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        sock.bind((address, 80))
        sock.listen(16)
        threading.Thread(target=serve, args=(sock, address), daemon=True).start()
    return hits


def start_front(body: bytes) -> str:
    """Inside the namespace: an allowed server on 127.0.0.1 that redirects /goto/URL and serves body elsewhere."""
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Front(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            goto = self.path.startswith("/goto/")
            self.send_response(302 if goto else 200)
            if goto:
                self.send_header("Location", urllib.parse.unquote(self.path[len("/goto/") :]))
            self.send_header("Content-Length", "0" if goto else str(len(body)))
            self.end_headers()
            if not goto:
                self.wfile.write(body)

    front = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{front.server_port}"
