"""Politeness in a real run: throttled hosts and delayed downloads reach the summary."""

from __future__ import annotations

import json
import uuid

from spark_img2ds import download
from spark_img2ds.net.politeness import HOST_DOWN_MESSAGE, UNANSWERED_LIMIT
from tests.helpers.silent import SilentListener


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


def test_the_summary_names_hosts_that_do_not_answer(spark, tmp_path):
    silent = SilentListener()
    try:
        url_list = tmp_path / "urls.txt"
        url_list.write_text("".join(f"{silent.url}/{i}.jpg\n" for i in range(5)))
        out = tmp_path / "out"
        summary = download(str(url_list), spark=spark, output_folder=str(out), thread_count=1, connect_timeout=0.3,
                           allow_private_networks=True)  # fmt: skip
    finally:
        silent.close()
    assert summary.error_counts == {
        "timed out while connecting": UNANSWERED_LIMIT,
        HOST_DOWN_MESSAGE: 5 - UNANSWERED_LIMIT,
    }
    assert len(silent.accepted) == UNANSWERED_LIMIT  # the skipped rows opened no connection
    assert summary.hosts_not_answering == 1 and summary.most_unanswered_hosts == {"127.0.0.1": 5}
    saved = json.loads((out / "_summary.json").read_text())["politeness"]
    assert saved["connect_timeout"] == 0.3 and saved["most_unanswered_hosts"] == {"127.0.0.1": 5}
    assert "not answering: 1 host(s)" in str(summary) and "127.0.0.1 (5)" in str(summary)
