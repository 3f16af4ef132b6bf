"""retry_failed_from's pure parts: which rows and shards, and the options of the retry."""

from __future__ import annotations

import pytest

from spark_img2ds.config import Config
from spark_img2ds.dataset.stats import OTHER_ERRORS, ShardStats, wants_retry
from spark_img2ds.driver.retry import retry_config, shards_to_retry
from spark_img2ds.errors import ConfigError

RECORDED = Config(
    url_list="in.csv", output_folder="old/place", output_format="tfrecord", image_size=64, caption_col="caption",
    save_additional_columns=["rid"], allow_private_networks=True, timeout=3, storage_options={"key": "***"},
    master="spark://gone:7077", max_image_area=float("inf"),
).to_public_dict()  # fmt: skip


@pytest.mark.parametrize(
    ("status", "error", "patterns", "wanted"),
    [
        ("success", None, None, False),
        ("failed_to_download", "HTTP 404 Not Found", None, True),
        ("failed_to_download", "timed out waiting for the server", ["Timed Out", "HTTP 5"], True),
        ("failed_to_download", "HTTP 503 Service Unavailable", ["timed out", "HTTP 5"], True),
        ("failed_to_download", "HTTP 404 Not Found", ["timed out", "HTTP 5"], False),
        ("failed_to_resize", None, ["failed_to_resize"], True),
        ("success", None, ["success"], False),
    ],
)
def test_wants_retry(status, error, patterns, wanted):
    assert wants_retry(status, error, patterns) is wanted


def _stats(shard_id: int, successes: int, errors: dict[str, int]) -> ShardStats:
    s = ShardStats(shard_id)
    for _ in range(successes):
        s.record("success", None, 1)
    for message, n in errors.items():
        for _ in range(n):
            s.record("failed_to_download", message, 0)
    return s


def test_shards_to_retry_reads_no_parquet_of_a_shard_without_a_wanted_failure():
    done = {0: _stats(0, 3, {}), 1: _stats(1, 1, {"HTTP 404 Not Found": 2}), 2: _stats(2, 2, {"timed out": 1})}
    assert shards_to_retry(done, None) == [1, 2]
    assert shards_to_retry(done, ["TIMED"]) == [2]
    folded = _stats(3, 0, {})
    folded.status_dict[OTHER_ERRORS], folded.count = 1, 1
    assert shards_to_retry({3: folded}, ["timed out"]) == [3]  # its messages are unknown: its parquet tells


def test_the_recorded_options_apply_and_download_options_may_change():
    cfg = retry_config(Config(retry_failed_from="ds", timeout=20, retries=2, retry_errors=["HTTP 5"]), RECORDED)
    assert (cfg.output_format, cfg.image_size, cfg.caption_col, cfg.save_additional_columns) == (
        "tfrecord", 64, "caption", ["rid"])  # fmt: skip
    assert (cfg.timeout, cfg.retries, cfg.allow_private_networks, cfg.retry_errors) == (20, 2, True, ["HTTP 5"])
    assert (cfg.output_folder, cfg.url_list, cfg.master, cfg.storage_options) == ("ds", None, None, {})
    assert cfg.max_image_area == float("inf")


def test_a_retry_refuses_options_that_would_change_the_files():
    with pytest.raises(ConfigError, match=r"image_size=64, output_format='tfrecord'"):
        retry_config(Config(retry_failed_from="ds", image_size=128, output_format="webdataset"), RECORDED)
    with pytest.raises(ConfigError, match="in place"):
        retry_config(Config(retry_failed_from="ds", output_folder="other"), RECORDED)
    with pytest.raises(ConfigError, match="dummy"):
        retry_config(Config(retry_failed_from="ds"), {**RECORDED, "output_format": "dummy"})
    with pytest.raises(ConfigError, match="options recorded in ds"):
        retry_config(Config(retry_failed_from="ds"), {**RECORDED, "image_size": -1})


def test_options_unknown_to_this_version_are_ignored_from_a_summary():
    cfg = retry_config(Config(retry_failed_from="ds"), {**RECORDED, "an_old_option": 1})
    assert cfg.image_size == 64


def test_retry_options_are_checked():
    with pytest.raises(ConfigError, match="leave url_list out"):
        Config(url_list="in.csv", retry_failed_from="ds")
    with pytest.raises(ConfigError, match="needs retry_failed_from"):
        Config(url_list="in.csv", retry_errors=["x"])
    with pytest.raises(ConfigError, match="url_list is required"):
        Config()
    with pytest.raises(ConfigError, match="incremental_mode does not apply"):
        Config(retry_failed_from="ds", incremental_mode="overwrite")
    assert Config.from_dict({"retry_failed_from": "ds", "retry_errors": "timed out,HTTP 5"}).retry_errors == [
        "timed out", "HTTP 5"]  # fmt: skip


def test_the_command_line_takes_a_retry_without_a_url_list():
    from spark_img2ds.cli import config_from_args

    cfg = config_from_args(["--retry_failed_from", "s3://b/ds", "--retry_errors", "timed out,HTTP 5"])
    assert (cfg.url_list, cfg.retry_failed_from, cfg.retry_errors) == (None, "s3://b/ds", ["timed out", "HTTP 5"])
