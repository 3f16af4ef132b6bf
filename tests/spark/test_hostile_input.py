"""Bad input gets one clear message before anything is written; hostile rows end as rows with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_img2ds import download
from spark_img2ds.errors import ConfigError, InputError
from tests.helpers.e2e import read_metadata, write_csv

COMMON = dict(output_format="webdataset", image_size=64, thread_count=8, timeout=3, number_sample_per_shard=20)


def refused(spark, tmp_path, url_list, error, match, **options):
    out = tmp_path / "out"
    with pytest.raises(error, match=match) as info:
        download(str(url_list), spark=spark, output_folder=str(out), **{**COMMON, **options})
    message = str(info.value)
    assert "\n" not in message and "Py4J" not in message and "java." not in message.split(":", 1)[0]
    assert not out.exists()  # refused before anything was written
    return message


def test_an_empty_input_is_refused(spark, tmp_path):
    empty = tmp_path / "urls.csv"
    empty.write_text("url,caption\n")
    refused(spark, tmp_path, empty, InputError, r"has no rows: nothing to download", input_format="csv")


def test_a_csv_without_the_url_column_names_what_it_has(spark, tmp_path):
    path = write_csv(tmp_path / "urls.csv", [{"link": "http://x/a.jpg"}], ["link"])
    refused(
        spark, tmp_path, path, InputError, r"column\(s\) 'url' not found .*available columns: link", input_format="csv"
    )


def test_json_that_does_not_parse_says_so(spark, tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text("this is not json\n{also not\n")
    message = refused(spark, tmp_path, path, InputError, r"not found", input_format="jsonl")
    assert "could not parse its records as jsonl" in message


def test_a_corrupt_parquet_file_is_one_line_naming_the_file(spark, tmp_path):
    path = tmp_path / "urls.parquet"
    path.write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    message = refused(spark, tmp_path, path, InputError, r"could not read url_list", input_format="parquet")
    assert "urls.parquet" in message


def test_a_url_column_that_is_not_text_is_refused(spark, tmp_path):
    path = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": pa.array([1, 2, 3], pa.int64())}), path)
    refused(
        spark,
        tmp_path,
        path,
        InputError,
        r"url column 'url' in .* holds bigint values, not text",
        input_format="parquet",
    )


def test_a_dataframe_url_column_that_is_not_text_is_refused(spark, tmp_path):
    df = spark.createDataFrame([({"a": 1},)], "url map<string,int>")
    with pytest.raises(InputError, match=r"holds map<string,int> values, not text"):
        download(df, spark=spark, output_folder=str(tmp_path / "out"), **COMMON)


def test_an_output_folder_that_cannot_be_created_is_refused_before_spark_reads(spark, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    urls = write_csv(tmp_path / "urls.csv", [{"url": "http://127.0.0.1:9/a.jpg"}], ["url"])
    with pytest.raises(ConfigError, match=r"cannot be created: .*a-file is a file, not a folder"):
        download(str(urls), spark=spark, input_format="csv", output_folder=str(blocker / "ds"), **COMMON)


def test_the_command_line_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": pa.array([1], pa.int64())}), path)
    proc = subprocess.run(
        [sys.executable, "-m", "spark_img2ds.cli", str(path), "--input_format", "parquet",
         "--output_folder", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("spark-img2ds: error:")]
    assert errors == ["spark-img2ds: error: url column 'url' in " + str(path) + " holds bigint values, not text; "
                      "point url_col at the column of URLs"]  # fmt: skip
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_hostile_rows_end_as_rows_with_a_reason(spark, tmp_path, server, image_dir):
    (image_dir / "a b,é.jpg").write_bytes((image_dir / "china.jpg").read_bytes())
    rows = {
        "file:///etc/passwd": "scheme not allowed: file",
        "data:image/png;base64,iVBORw0KGgo=": "scheme not allowed: data",
        "ftp://example.com/a.jpg": "scheme not allowed: ftp",
        "javascript:alert(document.cookie)": "scheme not allowed: javascript",
        "not a url at all": "invalid url",
        "http://a b.com/x.jpg": "invalid url",
        "http://metadata.google.internal/computeMetadata/v1/": "host not allowed: cloud metadata service",
        f"{server.url}/img/a b,é.jpg": None,
        f"{server.url}/goto?url={urllib.parse.quote('file:///etc/passwd', safe='')}": "scheme not allowed: file",
        f"{server.url}/big/60000000/length": "response body larger than max_download_bytes",
        f"{server.url}/bomb/300000000": "response body larger than max_download_bytes",
    }
    urls = write_csv(tmp_path / "urls.csv", [{"url": u} for u in rows], ["url"])
    out = tmp_path / "out"
    summary = download(
        str(urls), spark=spark, input_format="csv", output_folder=str(out), allow_private_networks=True, **COMMON
    )
    got = {r["url"]: (r["status"], r["error_message"]) for r in read_metadata(str(out))}
    assert set(got) == set(rows)  # every row accounted for, the URL kept as given
    for url, message in rows.items():
        expected = ("success", None) if message is None else ("failed_to_download", message)
        assert got[url] == expected, url
    assert summary.count == len(rows)
    assert json.loads((out / "_summary.json").read_text())["successes"] == 1
