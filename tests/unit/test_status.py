"""The status of a run, from its files: pure figures, and the command over a real folder."""

from __future__ import annotations

import json

import pytest

from spark_img2ds.cli import main
from spark_img2ds.dataset.stats import ShardStats
from spark_img2ds.dataset.status import STALE_AFTER, compute_status, recent_rate, stragglers

NOW = 10_000.0


def shard(shard_id: int, count: int, successes: int, start: float, end: float) -> ShardStats:
    return ShardStats(shard_id, count=count, successes=successes, failed_to_download=count - successes,
                      start_time=start, end_time=end)  # fmt: skip


def beat(name: str, done: int, started: float, updated: float, committed: bool = False) -> dict:
    return {"shard": name, "done": done, "total": 100, "started": started, "updated": updated,
            "committed": committed, "host": "h1", "pid": 1}  # fmt: skip


def test_recent_rate_spreads_each_shard_evenly_over_its_run():
    # 100 samples in 200 s, half of which lie in the window; 50 done over the last 100 s by a running shard
    stats = [shard(0, 100, 90, NOW - 400, NOW - 200 + 100)]  # ended 100 s ago, ran 300 s: 200 s in the window
    beats = [beat("00001", 50, NOW - 100, NOW)]
    assert recent_rate(stats, beats, NOW, window=300) == pytest.approx((100 * 200 / 300 + 50) / 300)
    assert recent_rate([shard(0, 100, 90, NOW - 900, NOW - 600)], [], NOW, window=300) == 0.0


def test_stragglers_are_slow_or_silent_running_shards():
    done = [shard(i, 100, 100, NOW - 500, NOW - 400) for i in range(3)]  # 100 s each
    beats = [
        beat("00003", 40, NOW - 150, NOW - 1),  # 150 s: under twice the median
        beat("00004", 40, NOW - 250, NOW - 1),  # slow
        beat("00005", 10, NOW - 60, NOW - STALE_AFTER - 5),  # silent
        beat("00006", 100, NOW - 900, NOW - 900, committed=True),  # committed: not running
    ]
    found = {g.shard: g.reason for g in stragglers(done, beats, NOW)}
    assert found == {"00004": "slow", "00005": "stalled"}
    assert [g.shard for g in stragglers(done[:2], beats, NOW)] == ["00005"]  # no median from two shards


def test_a_running_job_has_counts_a_rate_and_an_eta():
    job = {"job_id": "j2", "started": NOW - 300, "rows": 1000, "shards_total": 10}
    stats = {0: shard(0, 100, 80, NOW - 300, NOW - 200), 1: shard(1, 100, 100, NOW - 200, NOW - 100)}
    beats = [beat("00002", 50, NOW - 100, NOW - 2)]
    s = compute_status(job, {"job_id": "j1", "shards": {"total": 3}}, stats, beats, NOW)  # an older summary
    assert (s.state, s.job_id, s.shards_total, s.shards_done, s.shards_running) == ("running", "j2", 10, 2, 1)
    assert (s.samples_done, s.successes, s.success_rate, s.rows_total) == (250, 180, 0.9, 1000)
    assert s.recent_rate == pytest.approx(250 / 300)
    assert s.eta_seconds == pytest.approx(750 / (250 / 300))
    assert s.elapsed == pytest.approx(300)


def test_a_finished_job_and_one_that_stopped():
    job = {"job_id": "j1", "started": NOW - 300, "rows": 200, "shards_total": 2}
    stats = {0: shard(0, 100, 100, NOW - 300, NOW - 200)}
    summary = {"job_id": "j1", "shards": {"total": 2, "failed": 1}, "start_time": NOW - 300, "end_time": NOW - 50}
    s = compute_status(job, summary, stats, [], NOW)
    assert (s.state, s.shards_failed, s.eta_seconds, s.elapsed, s.stragglers) == ("incomplete", 1, None, 250, [])
    dead = compute_status(job, None, stats, [beat("00001", 5, NOW - 900, NOW - 800)], NOW)
    assert dead.state == "stopped" and dead.stragglers[0].reason == "stalled"
    assert compute_status(None, None, {}, [], NOW).state == "unknown"


def test_the_status_command_reads_a_folder_and_prints_json(tmp_path, capsys):
    (tmp_path / "_job.json").write_text(json.dumps({"job_id": "j", "started": 1.0, "rows": 20, "shards_total": 2}))
    (tmp_path / "00000_stats.json").write_text(json.dumps(shard(0, 10, 9, 1.0, 2.0).to_json()))
    (tmp_path / "_summary.json").write_text(json.dumps({"job_id": "j", "shards": {"total": 2, "failed": 1},
                                                        "count": 10, "start_time": 1.0, "end_time": 3.0}))  # fmt: skip
    assert main(["status", str(tmp_path), "--json"]) == 1  # incomplete
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["shards_done"], shown["successes"]) == ("incomplete", 1, 9)
    assert main(["status", str(tmp_path)]) == 1
    text = capsys.readouterr().out
    assert "incomplete (job j)" in text and "shards: 1/2 done, 0 running, 1 failed" in text
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_spark_job_descriptions_name_the_shards_and_the_attempt():
    from spark_img2ds.config import Config
    from spark_img2ds.driver.progress import job_description

    cfg = Config(url_list="u.txt", output_folder="s3://key:secret@bucket/ds", oom_shard_count=3)
    assert job_description(cfg, [7], 0) == "spark_img2ds: download 007 of s3://***@bucket/ds"
    expected = "spark_img2ds: download 3 shards 003..012 of s3://***@bucket/ds (attempt 2 of 2)"
    assert job_description(cfg, [12, 3, 5], 1) == expected
    retry = Config(retry_failed_from="out")
    assert job_description(retry, [0], 0).startswith("spark_img2ds: rewrite 00000 of ")


def test_dataset_commands_refuse_storage_options_that_are_not_json(tmp_path, capsys):
    assert main(["status", str(tmp_path), "--storage_options", "{key: x"]) == 2
    assert "storage_options is not valid JSON" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--storage_options", "[1,"]) == 2
    assert "storage_options is not valid JSON" in capsys.readouterr().err


def test_samples_of_a_dummy_dataset_are_refused():
    from spark_img2ds.driver.summary import Summary
    from spark_img2ds.errors import Img2dsError

    with pytest.raises(Img2dsError, match="dummy keeps no per-sample results"):
        Summary(output_folder="out", job_id="j", complete=True, _format="dummy").samples()
