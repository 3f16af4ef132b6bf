"""Politeness in a real run: throttled hosts and delayed downloads reach the summary."""

from __future__ import annotations

import json
import uuid

from spark_img2ds import download


def test_the_summary_counts_throttled_hosts_and_delayed_downloads(spark, server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    url_list = tmp_path / "urls.txt"
    url_list.write_text(f"{server.url}/busy/1/{tag}/china.jpg\n"
                        + "".join(f"{server.url}/delay/0.1/coffee.jpg?p={i}\n" for i in range(6)))  # fmt: skip
    out = tmp_path / "out"
    summary = download(str(url_list), spark=spark, output_folder=str(out), retries=1, thread_count=8,
                       max_connections_per_host=2, allow_private_networks=True)  # fmt: skip
    assert summary.successes == 7 and summary.hosts_throttled == 1 and summary.requests_delayed >= 1
    saved = json.loads((out / "_summary.json").read_text())["politeness"]
    assert saved["max_connections_per_host"] == 2 and saved["most_throttled_hosts"] == {"127.0.0.1": 1}
    assert "host(s) throttled us" in str(summary)
