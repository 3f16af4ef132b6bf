"""A task's thread pool: started before work is handed out, and downloads in flight bounded."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa

from spark_img2ds.config import Config
from spark_img2ds.worker import INDEX_COL, SHARD_COL, partition_worker, pool_size, start_threads


def test_all_threads_are_running_before_work_is_given():
    with ThreadPoolExecutor(max_workers=8) as pool:
        start_threads(pool, 8)
        assert len(pool._threads) == 8  # noqa: SLF001  (the pool's own record of its threads)
        assert sum(t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate()) >= 8
        assert pool.submit(lambda: 42).result(5) == 42


def test_a_pool_that_cannot_start_them_all_is_left_working():
    """More threads asked for than the pool may have: the gate gives up, nothing hangs or raises."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        start_threads(pool, 3, timeout=0.5)
        assert pool.submit(lambda: "still works").result(5) == "still works"


class _CountingServer(ThreadingHTTPServer):
    """Serves one JPEG after a short wait and records the most requests it was holding at once."""

    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.body = body
        self.lock = threading.Lock()
        self.open = 0
        self.peak = 0


class _CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.open += 1
            srv.peak = max(srv.peak, srv.open)
        time.sleep(0.05)
        # Counted out before the reply: the client cannot finish a request, and start another in
        # its freed slot, until the reply is sent, so this count never exceeds the client's.
        with srv.lock:
            srv.open -= 1
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(srv.body)))
        self.end_headers()
        self.wfile.write(srv.body)


def test_thread_count_is_the_number_of_downloads_in_flight(image_dir, tmp_path):
    """As in img2dataset: thread_count requests at once, however many threads the pool has."""
    srv = _CountingServer((image_dir / "flower.jpg").read_bytes())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        n = 24
        cfg = Config.from_dict(
            dict(
                url_list="unused",
                output_folder=str(tmp_path / "out"),
                thread_count=3,
                number_sample_per_shard=n,
                image_size=64,
                allow_private_networks=True,
            )
        )
        assert pool_size(cfg) > cfg.thread_count
        urls = [f"http://127.0.0.1:{srv.server_port}/{i}.jpg" for i in range(n)]
        batch = pa.RecordBatch.from_pydict(
            {SHARD_COL: [0] * n, INDEX_COL: list(range(n)), "url": urls, "caption": ["c"] * n}
        )
        results = pa.Table.from_batches(list(partition_worker(cfg)(iter([batch])))).to_pylist()
    finally:
        srv.shutdown()
        srv.server_close()
    assert [r["ok"] for r in results] == [True]
    assert json.loads(results[0]["stats"])["successes"] == n
    assert srv.peak == cfg.thread_count
