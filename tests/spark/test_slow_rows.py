"""A slow row at the head of a shard does not hold back the rows behind it (writes stay in index order)."""

from __future__ import annotations

import threading
import time
import uuid

from spark_img2ds import download
from tests.helpers.e2e import read_tars


def test_rows_behind_a_slow_row_are_downloaded_while_it_waits(spark, server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    fast = [f"{server.url}/img/china.jpg?{tag}={i}" for i in range(99)]
    url_list = tmp_path / "urls.txt"
    url_list.write_text("\n".join([f"{server.url}/delay/4/coffee.jpg?{tag}", *fast]) + "\n")
    seen_while_slow = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if server.delaying:
                served = sum(n for path, n in list(server.path_hits.items()) if f"?{tag}=" in path)
                seen_while_slow[0] = max(seen_while_slow[0], served)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = download(str(url_list), spark=spark, output_folder=str(tmp_path / "out"), thread_count=2,
                           output_format="webdataset", number_sample_per_shard=100, timeout=10,
                           allow_private_networks=True)  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    assert summary.successes == 100
    # The window of running downloads is (2 + 2) x 4 = 16 rows; the rows behind the slow one went on anyway.
    assert seen_while_slow[0] >= 60, seen_while_slow[0]
    assert sorted(read_tars(str(tmp_path / "out"))) == [f"00000{i:02d}" for i in range(100)]  # every row, in order
