"""Every input format gives the same keys for the same rows, in input order."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_img2ds import download
from spark_img2ds.driver.sharding import split_offsets
from spark_img2ds.errors import InputError
from tests.helpers.e2e import read_metadata, read_tars

N = 12
OPTS = dict(
    output_format="webdataset",
    image_size=32,
    thread_count=4,
    timeout=5,
    number_sample_per_shard=5,
    extract_exif=False,
    allow_private_networks=True,
)


def rows(base: str) -> list[dict]:
    return [{"url": f"{base}/img/flower.jpg?n={i}", "caption": f'say "hi", {i}\nsecond line', "n": i} for i in range(N)]


def write_input(folder, fmt: str, data: list[dict]) -> str:
    """Write data as fmt; returns the path given to url_list."""
    path = folder / f"input.{fmt}"
    opener = gzip.open if fmt.endswith(".gz") else open
    base = fmt.removesuffix(".gz")
    if base == "txt":
        with opener(path, "wt", encoding="utf-8") as fh:
            fh.write("".join(r["url"] + "\n" + ("\n" if i == 3 else "") for i, r in enumerate(data)))
    elif base in ("csv", "tsv"):
        import csv

        with opener(path, "wt", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["url", "caption", "n"], delimiter="," if base == "csv" else "\t")
            w.writeheader()
            w.writerows(data)
    elif base == "json":
        with opener(path, "wt", encoding="utf-8") as fh:
            json.dump(data, fh)
    elif base == "jsonl":
        with opener(path, "wt", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in data))
    elif base == "parquet":
        pq.write_table(pa.Table.from_pylist(data), path, row_group_size=4)
    return str(path)


def by_url(folder) -> dict[str, dict]:
    return {r["url"]: r for r in read_metadata(str(folder))}


@pytest.mark.parametrize(
    "fmt", ["txt", "txt.gz", "csv", "csv.gz", "tsv", "tsv.gz", "json", "jsonl", "jsonl.gz", "parquet"]
)
def test_format_gives_positional_keys(spark, server, tmp_path, fmt):
    data = rows(server.url)
    url_list = write_input(tmp_path, fmt, data)
    extra = {} if fmt.startswith("txt") else {"caption_col": "caption", "save_additional_columns": ["n"]}
    out = tmp_path / "out"
    summary = download(url_list, spark=spark, input_format=fmt, output_folder=str(out), **OPTS, **extra)
    assert summary.count == N and summary.successes == N
    meta = by_url(out)
    for i, r in enumerate(data):
        assert meta[r["url"]]["key"] == f"{i // 5:05d}{i % 5}"
        if extra:
            assert meta[r["url"]]["caption"] == r["caption"]
            assert int(meta[r["url"]]["n"]) == i


@pytest.mark.parametrize("cut", [7, 3])
def test_folder_of_files_is_read_in_sorted_file_order(spark, server, tmp_path, cut):
    data = rows(server.url)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    # b.csv sorts after a.csv whatever their sizes; files of other formats are ignored.
    # Small files share one Spark partition, largest first: with cut 3, b.csv comes first there.
    for name, part in (("b", data[cut:]), ("a", data[:cut])):
        write_input(folder, "csv", part)
        (folder / "input.csv").rename(folder / f"{name}.csv")
    (folder / "ignored.txt").write_text("http://example.invalid/nope.jpg\n")
    out = tmp_path / "out"
    download(str(folder), spark=spark, input_format="csv", caption_col="caption", output_folder=str(out), **OPTS)
    meta = by_url(out)
    assert len(meta) == N
    for i, r in enumerate(data):
        assert meta[r["url"]]["key"] == f"{i // 5:05d}{i % 5}"


def test_dataframe_input_accounts_for_every_row(spark, server, tmp_path):
    data = rows(server.url)
    df = spark.createDataFrame(data).repartition(3)
    out = tmp_path / "out"
    summary = download(
        df, spark=spark, caption_col="caption", save_additional_columns=["n"], output_folder=str(out), **OPTS
    )
    assert summary.count == N
    meta = read_metadata(str(out))
    assert sorted(int(r["n"]) for r in meta) == list(range(N))
    assert sorted(r["key"] for r in meta) == sorted(f"{i // 5:05d}{i % 5}" for i in range(N))
    tars = read_tars(str(out))
    for r in meta:
        assert json.loads(tars[r["key"]]["json"])["url"] == r["url"]
    assert json.loads((out / "_summary.json").read_text())["config"]["url_list"] == "<DataFrame>"


def test_split_offsets_orders_by_file_then_block():
    groups = [("b", 0, 3, 100), ("a", 10, 2, 7), ("a", 0, 4, 50)]
    assert split_offsets(groups) == [("a", 0, -50), ("a", 10, 4 - 7), ("b", 0, 6 - 100)]


def test_an_input_of_blank_lines_is_refused_as_empty(spark, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="has no rows: nothing to download"):
        download(str(path), spark=spark, output_folder=str(out), **OPTS)
    assert not out.exists()
