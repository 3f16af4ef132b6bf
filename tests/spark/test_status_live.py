"""`spark-img2ds status` on a dataset while its run goes on, then after it ended."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from spark_img2ds import download


def status(out) -> dict:
    done = subprocess.run([sys.executable, "-m", "spark_img2ds.cli", "status", str(out), "--json"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return json.loads(done.stdout)


def test_status_sees_a_running_job_and_then_its_end(spark, server, tmp_path):
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(f"{server.url}/delay/0.5/china.jpg?s={i}\n" for i in range(24)))
    out = tmp_path / "out"
    box = {}
    run = threading.Thread(target=lambda: box.update(summary=download(
        str(url_list), spark=spark, output_folder=str(out), thread_count=2, number_sample_per_shard=4,
        progress_interval=0.5, allow_private_networks=True)))  # fmt: skip
    run.start()
    seen = []
    while run.is_alive():
        if (out / "_job.json").exists():
            seen.append(status(out))
        time.sleep(0.3)
    run.join()
    running = [s for s in seen if s["state"] == "running" and s["shards_running"] >= 1 and s["samples_done"] > 0]
    assert running, seen
    assert all(s["rows_total"] == 24 and s["shards_total"] == 6 for s in running)
    assert any(0 < s["samples_done"] < 24 for s in running)  # mid-run figures, from heartbeats and stats
    assert any(s["recent_rate"] > 0 and s["eta_seconds"] is not None for s in running)
    final = status(out)
    assert (final["state"], final["shards_done"], final["samples_done"]) == ("finished", 6, 24)
    assert final["successes"] == box["summary"].successes == 24
