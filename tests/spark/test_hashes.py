"""compute_hash and verify_hash through download(): every hash type, matches and mismatches."""

from __future__ import annotations

import hashlib

import pytest

from spark_img2ds import download
from tests.helpers.e2e import read_metadata, write_csv

NAMES = ["china.jpg", "camera.png", "pic.webp"]


@pytest.mark.parametrize("hash_type", ["md5", "sha256", "sha512", None])
def test_compute_hash_writes_the_column_img2dataset_writes(spark, server, image_dir, tmp_path, hash_type):
    urls = write_csv(tmp_path / "urls.csv", [{"url": f"{server.url}/img/{n}"} for n in NAMES], ["url"])
    out = tmp_path / "out"
    download(str(urls), spark=spark, input_format="csv", output_folder=str(out), output_format="parquet",
             image_size=32, thread_count=4, timeout=5, allow_private_networks=True, compute_hash=hash_type)  # fmt: skip
    rows = read_metadata(str(out))
    for row in rows:
        if hash_type is None:
            assert not {"md5", "sha256", "sha512"} & set(row)
            continue
        source = (image_dir / row["url"].rsplit("/", 1)[1]).read_bytes()
        assert row[hash_type] == hashlib.new(hash_type, source).hexdigest()


def test_verify_hash_fails_mismatches_and_keeps_the_column(spark, server, image_dir, tmp_path):
    rows = []
    for i, name in enumerate(NAMES):
        digest = hashlib.md5((image_dir / name).read_bytes()).hexdigest()
        rows.append({"url": f"{server.url}/img/{name}", "expected": digest.upper() if i == 0 else digest})
    rows.append({"url": f"{server.url}/img/coffee.jpg", "expected": "0" * 32})
    rows.append({"url": f"{server.url}/img/rocket.jpg", "expected": ""})
    urls = write_csv(tmp_path / "urls.csv", rows, ["url", "expected"])
    out = tmp_path / "out"
    summary = download(str(urls), spark=spark, input_format="csv", output_folder=str(out), image_size=32,
                       thread_count=4, timeout=5, allow_private_networks=True, verify_hash=["expected", "md5"],
                       output_format="webdataset")  # fmt: skip
    got = {r["url"].rsplit("/", 1)[1]: r for r in read_metadata(str(out))}
    assert summary.successes == 3
    for name in NAMES:
        assert got[name]["status"] == "success"  # upper-case hex matches too
    for name in ("coffee.jpg", "rocket.jpg"):
        assert (got[name]["status"], got[name]["error_message"]) == ("failed_to_download", "hash mismatch")
    assert got["coffee.jpg"]["expected"] == "0" * 32
