"""A task's thread pool: started before work is handed out, and downloads in flight bounded."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import INDEX_COL, SHARD_COL
from spark_img2ds.worker.sample import pool_size
from spark_img2ds.worker.task import partition_worker, start_threads


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


# --- several shards in one task -----------------------------------------------------------------


def _batch(shards: dict[int, list[str]]) -> pa.RecordBatch:
    """One partition's rows, sorted by shard then index, as mapInArrow hands them over."""
    ids, idx, urls = [], [], []
    for shard, shard_urls in sorted(shards.items()):
        ids += [shard] * len(shard_urls)
        idx += list(range(len(shard_urls)))
        urls += shard_urls
    return pa.RecordBatch.from_pydict({SHARD_COL: ids, INDEX_COL: idx, "url": urls, "caption": ["c"] * len(urls)})


def _config(out, per_shard: int, **extra) -> Config:
    return Config.from_dict(
        dict(
            url_list="unused",
            output_folder=str(out),
            output_format="webdataset",
            number_sample_per_shard=per_shard,
            image_size=32,
            allow_private_networks=True,
            **extra,
        )
    )


def test_the_next_shard_downloads_while_the_last_one_finishes(image_dir, tmp_path):
    """No idle slots at a shard boundary: both shards' requests are open at once."""
    srv = _CountingServer((image_dir / "flower.jpg").read_bytes())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_port}"
        cfg = _config(tmp_path / "out", 2, thread_count=4)
        batch = _batch({0: [f"{base}/a0.jpg", f"{base}/a1.jpg"], 1: [f"{base}/b0.jpg", f"{base}/b1.jpg"]})
        results = pa.Table.from_batches(list(partition_worker(cfg)(iter([batch])))).to_pylist()
    finally:
        srv.shutdown()
        srv.server_close()
    assert [(r["shard_id"], r["ok"]) for r in results] == [(0, True), (1, True)]
    assert srv.peak == 4, "shard 1's downloads waited for shard 0 to finish"


# An aborted shard's parquet writer must be closed into its discarded file, not left to write
# its footer to a closed file when it is collected (an unraisable error, turned into a failure here).
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_failing_shard_is_abandoned_alone(server, tmp_path):
    """Shard 1 stalls and shard 2 cannot be published; shards 0 and 3 are written whole."""
    out = tmp_path / "out"
    (out / "00002.tar").mkdir(parents=True)  # the tar cannot be renamed into place
    img = f"{server.url}/img/china.jpg"
    batch = _batch(
        {
            0: [f"{img}?s=0&i={i}" for i in range(3)],
            1: [f"{img}?s=1", f"{server.url}/hang/4", f"{img}?s=1&i=2"],
            2: [f"{img}?s=2&i={i}" for i in range(3)],
            3: [f"{img}?s=3&i={i}" for i in range(3)],
        }
    )
    cfg = _config(out, 3, thread_count=4, timeout=6, stall_timeout=1)
    results = {r["shard_id"]: r for r in pa.Table.from_batches(list(partition_worker(cfg)(iter([batch])))).to_pylist()}
    assert sorted(results) == [0, 1, 2, 3]
    assert "no progress for 1s" in results[1]["error"]
    assert "IsADirectoryError" in results[2]["error"] or "Is a directory" in results[2]["error"]
    for shard in (0, 3):
        assert results[shard]["ok"] and json.loads(results[shard]["stats"])["successes"] == 3
        assert (out / f"0000{shard}_stats.json").exists()
    for shard in (1, 2):
        assert not results[shard]["ok"]
        assert not (out / f"0000{shard}_stats.json").exists(), "a failed shard must not look committed"
    assert not (out / "00001.parquet").exists() and not (out / "00001.tar").exists()
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name or "_running" in str(p.parent)]
    assert leftovers == [], "abandoned shards left temporary files or heartbeats"


def test_a_committed_shard_is_reported_not_downloaded_again(server, tmp_path):
    out = tmp_path / "out"
    cfg = _config(out, 2, thread_count=2)
    good = [f"{server.url}/img/flower.jpg?i={i}" for i in range(2)]
    first = list(partition_worker(cfg)(iter([_batch({0: good})])))
    before = (out / "00000.tar").read_bytes()
    gone = [f"{server.url}/status/404?i={i}" for i in range(2)]
    again = pa.Table.from_batches(list(partition_worker(cfg)(iter([_batch({0: gone, 1: good})])))).to_pylist()
    assert [(r["shard_id"], r["ok"]) for r in again] == [(0, True), (1, True)]
    assert json.loads(again[0]["stats"]) == json.loads(first[0].to_pylist()[0]["stats"])
    assert (out / "00000.tar").read_bytes() == before
    assert json.loads(again[1]["stats"])["successes"] == 2
