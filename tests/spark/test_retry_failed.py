"""retry_failed_from: failed rows downloaded again in place, old samples kept byte for byte, keys unique."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest

from spark_img2ds import download
from spark_img2ds.errors import ConfigError
from tests.helpers.e2e import read_metadata, write_csv
from tests.spark.test_format_matrix import stored_images

OPTS = dict(input_format="csv", caption_col="caption", save_additional_columns=["rid"], image_size=32,
            thread_count=4, timeout=5, number_sample_per_shard=3, allow_private_networks=True)  # fmt: skip


def _rows(base: str, tag: str) -> list[dict]:
    paths = [
        "/img/china.jpg", f"/flaky/{tag}a/camera.png", "/status/404",  # shard 0: one recoverable row
        "/img/coffee.jpg", "/img/pic.webp", "/img/flower.jpg",  # shard 1: nothing failed
        f"/flaky/{tag}b/china.jpg", "/status/503", "/img/alpha.png",  # shard 2: one recoverable row
        "/status/404",  # shard 3: a failure that stays one
    ]  # fmt: skip
    return [{"url": base + p, "caption": f"caption {i}", "rid": f"r{i}"} for i, p in enumerate(paths)]


def _files(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name[0] != "_"}


def _three_row_dataset(spark, server, tmp_path):
    """A webdataset of the first three rows of _rows, as a first run writes it; its folder."""
    url_list = write_csv(tmp_path / "in.csv", _rows(server.url, uuid.uuid4().hex[:8])[:3], ["url", "caption", "rid"])
    out = tmp_path / "out"
    download(str(url_list), spark=spark, output_folder=str(out), output_format="webdataset", **OPTS)
    return out


def _rewrite_tar(path, keep=lambda name: True, extra: dict[str, bytes] | None = None) -> None:
    """Write a tar again with the members keep() allows, then extra members: what a crash or a loss leaves."""
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if keep(m.name)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("output_format", ["webdataset", "parquet", "files", "tfrecord", "npz"])
def test_retry_recovers_failed_rows_and_keeps_everything_else(spark, server, tmp_path, output_format):
    tag = uuid.uuid4().hex[:8]
    url_list = write_csv(tmp_path / "in.csv", _rows(server.url, tag), ["url", "caption", "rid"])
    out = tmp_path / "out"
    first = download(str(url_list), spark=spark, output_folder=str(out), output_format=output_format, **OPTS)
    assert (first.count, first.successes, first.complete) == (10, 5, True)
    before_files, before_images = _files(out), stored_images(out, output_format)
    before_meta = {r["key"]: r for r in read_metadata(str(out))}

    # No other option: the dataset's recorded ones apply (format, size, columns, the private-network admission).
    summary = download(retry_failed_from=str(out), spark=spark)
    assert (summary.retried, summary.recovered, summary.shards_written) == (5, 2, 2)
    assert (summary.count, summary.successes, summary.complete) == (10, 7, True)

    after_meta = {r["key"]: r for r in read_metadata(str(out))}
    assert sorted(after_meta) == sorted(before_meta)  # every row once, under its old key
    recovered = sorted(k for k in after_meta if before_meta[k]["status"] != "success" == after_meta[k]["status"])
    assert recovered == ["000001", "000020"]
    for key in recovered:
        assert (after_meta[key]["caption"], after_meta[key]["rid"]) == (before_meta[key]["caption"],
                                                                        before_meta[key]["rid"])  # fmt: skip
    for key, row in before_meta.items():
        if key not in recovered:
            assert after_meta[key] == row  # kept rows unchanged, failures included

    images = stored_images(out, output_format)
    assert sorted(images) == sorted([*before_images, *recovered])
    for key, image in before_images.items():
        assert (image == images[key]).all() if hasattr(image, "shape") else image == images[key]

    after_files = _files(out)
    untouched = [name for name in before_files if name.startswith(("00001", "00003"))]
    assert untouched and all(after_files[name] == before_files[name] for name in untouched)  # shards 1 and 3
    assert json.loads((out / "00000_stats.json").read_text())["successes"] == 2
    saved = json.loads((out / "_summary.json").read_text())
    assert (saved["successes"], saved["retry"]["recovered"], saved["retry"]["retried"]) == (7, 2, 5)
    assert saved["error_counts"] == {"HTTP 404 Not Found": 2, "HTTP 503 Service Unavailable": 1}

    again = download(retry_failed_from=str(out), spark=spark)  # nothing left to gain: nothing rewritten
    assert (again.retried, again.recovered, again.shards_written, again.successes) == (3, 0, 0, 7)
    assert _files(out) == after_files


def test_retry_errors_selects_rows_by_error_text(spark, server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    url_list = write_csv(tmp_path / "in.csv", _rows(server.url, tag), ["url", "caption", "rid"])
    out = tmp_path / "out"
    download(str(url_list), spark=spark, output_folder=str(out), output_format="webdataset", **OPTS)
    hits_404 = server.path_hits["/status/404"]
    summary = download(retry_failed_from=str(out), retry_errors=["http 5"], spark=spark, timeout=3)
    assert (summary.retried, summary.recovered) == (3, 2)  # the two 500s of the flaky routes and the 503
    assert server.path_hits["/status/404"] == hits_404  # not asked again


def test_an_interrupted_rewrite_is_finished_by_the_next_retry(spark, server, tmp_path):
    """A crash between the tar and the parquet leaves a sample the parquet calls failed: the next retry settles it."""
    out = _three_row_dataset(spark, server, tmp_path)
    tar_path = out / "00000.tar"
    _rewrite_tar(tar_path, extra={"000002.jpg": b"junk"})  # what the crashed rewrite committed: a sample for 000002

    summary = download(retry_failed_from=str(out), spark=spark)
    assert (summary.retried, summary.recovered, summary.successes) == (2, 1, 2)
    with tarfile.open(tar_path) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == [f"00000{i}.{ext}" for i in (0, 1) for ext in ("jpg", "json", "txt")]  # the stale one is gone
    assert [r["status"] for r in read_metadata(str(out))] == ["success", "success", "failed_to_download"]


def test_retry_refuses_what_it_cannot_do(spark, server, tmp_path):
    with pytest.raises(ConfigError, match="no _summary.json"):
        download(retry_failed_from=str(tmp_path), spark=spark)
    url_list = write_csv(tmp_path / "in.csv", _rows(server.url, "x")[:1], ["url", "caption", "rid"])
    out = tmp_path / "out"
    download(str(url_list), spark=spark, output_folder=str(out), output_format="webdataset", **OPTS)
    with pytest.raises(ConfigError, match=r"written with image_size=32.*leave these options out"):
        download(retry_failed_from=str(out), spark=spark, image_size=64)
    with pytest.raises(ConfigError, match="in place"):
        download(retry_failed_from=str(out), spark=spark, output_folder=str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="leave url_list out"):
        download(str(url_list), retry_failed_from=str(out), spark=spark)
    with pytest.raises(ConfigError, match="needs retry_failed_from"):
        download(str(url_list), retry_errors=["timed out"], spark=spark)


def test_a_shard_whose_files_lost_a_sample_is_left_as_it_was(spark, server, tmp_path):
    """The parquet calls a row a success that the tar no longer holds: the rewrite refuses, nothing is replaced."""
    out = _three_row_dataset(spark, server, tmp_path)
    _rewrite_tar(out / "00000.tar", keep=lambda name: not name.startswith("000000."))  # the success 000000 is lost
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("00000")}

    summary = download(retry_failed_from=str(out), spark=spark, max_shard_retry=0)
    assert not summary.complete and summary.recovered == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("00000")} == before
    error = json.loads((out / "_summary.json").read_text())["per_shard"][0]
    assert error["state"] == "done"  # the old shard stands; the failed rewrite is in the log and the summary
    assert summary.shards_failed == [0]
