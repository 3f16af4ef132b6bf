"""A real job inside a network namespace: rows aimed at metadata and private listeners are recorded, not fetched.

Like tests/unit/test_netns_policy.py, but through download(): Spark in local mode, the
URL list as a CSV, the outcome read from the shard parquet. The listeners count every
connection; a refused class must show zero.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.helpers import netns
from tests.helpers.netns import TARGETS

SCRIPT = textwrap.dedent(
    """
    import csv, json, sys, time, urllib.parse
    import pyarrow.parquet as pq
    from spark_img2ds import download
    from spark_img2ds.demo.runner import DATA
    from tests.helpers.netns import TARGETS, host_name, start_front, start_listeners

    work = sys.argv[1]
    image = (DATA / "coffee.jpg").read_bytes()
    hits = start_listeners(image)
    front_url = start_front(image)

    rows = [(front_url + "/ok.jpg", "allowed")]
    for address in TARGETS:
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}/latest/meta-data/"
        name = "http://" + host_name(address) + "/x.jpg"
        rows += [(url, address), (name, address), (front_url + "/goto/" + urllib.parse.quote(url, safe=""), address)]
    with open(f"{work}/urls.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["url", "target"])
        writer.writerows(rows)
    started = time.monotonic()
    summary = download(
        f"{work}/urls.csv", input_format="csv", save_additional_columns=["target"], output_folder=f"{work}/out",
        output_format="parquet", image_size=32, thread_count=8, timeout=3, processes_count=2,
        allowed_networks=["127.0.0.1/32"],
    )
    table = pq.read_table(f"{work}/out/00000.parquet", columns=["url", "target", "status", "error_message"])
    print("RESULT " + json.dumps({"rows": table.to_pylist(), "hits": hits, "seconds": time.monotonic() - started}))
    """
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    return netns.run(tmp_path_factory.mktemp("netns-job"), SCRIPT)


def test_every_refused_row_is_recorded_with_its_class_and_nothing_was_fetched(outcome):
    rows = outcome["rows"]
    assert len(rows) == 1 + 3 * len(TARGETS)  # every input row accounted for
    for row in rows:
        if row["target"] == "allowed":
            assert (row["status"], row["error_message"]) == ("success", None)
        else:
            expected = f"address not allowed: {TARGETS[row['target']]}"
            assert (row["status"], row["error_message"]) == ("failed_to_download", expected), row["url"]
    assert outcome["hits"] == {a: 0 for a in TARGETS}
