"""10,000 URLs: every row accounted for, S3 gives the same keys, a rerun downloads nothing."""

from __future__ import annotations

import time

import pytest

from spark_img2ds import download
from tests.helpers.e2e import read_metadata, write_csv

pytestmark = pytest.mark.slow

N = 10_000
IMAGES = ["china.jpg", "flower.jpg", "astronaut.jpg", "coffee.jpg", "chelsea.jpg", "rocket.jpg", "camera.png"]
OPTS = dict(
    input_format="csv",
    caption_col="caption",
    output_format="webdataset",
    image_size=256,
    resize_mode="border",
    number_sample_per_shard=1000,
    thread_count=32,
    timeout=10,
    allow_private_networks=True,
)


@pytest.fixture(scope="module")
def big_list(server, tmp_path_factory):
    rows = []
    for i in range(N):
        if i % 500 == 499:
            rows.append({"url": f"{server.url}/status/404?{i}", "caption": f"missing {i}"})
        else:
            rows.append({"url": f"{server.url}/img/{IMAGES[i % len(IMAGES)]}?{i}", "caption": f"image {i}"})
    return write_csv(tmp_path_factory.mktemp("scale") / "urls.csv", rows, ["url", "caption"])


def statuses(rows: list[dict]) -> dict[str, tuple[str, str]]:
    return {r["key"]: (r["url"], r["status"]) for r in rows}


def test_ten_thousand_urls_local_then_s3_then_incremental(spark, server, s3, bucket, big_list, tmp_path):
    local = tmp_path / "local"
    started = time.time()
    summary = download(str(big_list), spark=spark, output_folder=str(local), **OPTS)
    elapsed = time.time() - started
    print(f"\nlocal: {N} URLs in {elapsed:.1f}s = {N / elapsed:.0f} images/s (Spark session already running)")
    assert summary.complete
    assert summary.count == N
    assert summary.failed_to_download == N // 500
    assert summary.successes == N - N // 500
    local_rows = read_metadata(str(local))
    assert len(local_rows) == N
    assert len({r["key"] for r in local_rows}) == N

    so = s3["storage_options"]
    remote = f"{bucket}/scale"
    started = time.time()
    remote_summary = download(str(big_list), spark=spark, output_folder=remote, storage_options=so, **OPTS)
    print(f"s3: {N} URLs in {time.time() - started:.1f}s")
    assert remote_summary.complete and remote_summary.count == N
    assert statuses(read_metadata(remote, so)) == statuses(local_rows)

    hits = server.hits
    again = download(str(big_list), spark=spark, output_folder=remote, storage_options=so, **OPTS)
    assert server.hits == hits
    assert again.shards_skipped == 10 and again.shards_written == 0 and again.count == N
