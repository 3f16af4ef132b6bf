"""bench/run_bench.py: the fraction of the compute ceiling is taken round by round, then the median."""

from __future__ import annotations

import argparse

import pytest

from bench import run_bench
from bench.runners import RunResult


def test_each_round_is_divided_by_its_own_ceiling():
    got = run_bench.per_round_fraction({"1": 400.0, "2": 300.0, "3": 500.0}, {"1": 500.0, "2": 600.0, "3": 500.0})
    assert got["by_round"] == {"1": 0.8, "2": 0.5, "3": 1.0}
    assert got["median"] == 0.8


def test_not_the_median_images_over_the_median_ceiling():
    ips, ceilings = {"1": 400.0, "2": 600.0, "3": 500.0}, {"1": 500.0, "2": 600.0, "3": 1000.0}
    got = run_bench.per_round_fraction(ips, ceilings)
    assert got["by_round"] == {"1": 0.8, "2": 1.0, "3": 0.5}
    assert got["median"] == 0.8  # the medians alone would give 500 / 600 = 0.833


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    got = run_bench.per_round_fraction({"1": 100.0, "2": 200.0, "3": 300.0, "4": 900.0}, dict.fromkeys("1234", 1000.0))
    assert got["by_round"] == {"1": 0.1, "2": 0.2, "3": 0.3, "4": 0.9}
    assert got["median"] == pytest.approx(0.25)


def test_a_round_without_a_ceiling_or_without_a_run_is_left_out():
    got = run_bench.per_round_fraction({"1": 400.0, "2": 100.0, "4": 450.0}, {"1": 500.0, "3": 100.0, "4": 500.0})
    assert got["by_round"] == {"1": 0.8, "4": 0.9}
    assert got["median"] == pytest.approx(0.85)


def test_a_zero_ceiling_is_left_out():
    got = run_bench.per_round_fraction({"1": 400.0, "2": 400.0}, {"1": 500.0, "2": 0.0})
    assert got["by_round"] == {"1": 0.8}
    assert got["median"] == 0.8


def test_a_failed_run_counts_as_zero():
    got = run_bench.per_round_fraction({"1": 0.0, "2": 400.0, "3": 450.0}, dict.fromkeys("123", 500.0))
    assert got["by_round"] == {"1": 0.0, "2": 0.8, "3": 0.9}
    assert got["median"] == 0.8


def test_no_common_round_gives_no_median():
    assert run_bench.per_round_fraction({}, {"1": 500.0}) == {"by_round": {}, "median": None}
    assert run_bench.per_round_fraction({"1": 400.0}, {}) == {"by_round": {}, "median": None}


def test_the_median_is_taken_before_rounding():
    got = run_bench.per_round_fraction({"1": 1.0, "2": 2.0}, {"1": 3.0, "2": 3.0})
    assert got["by_round"] == {"1": 0.333, "2": 0.667}
    assert got["median"] == 0.5


def _run(tool: str, label: str, images_per_s: float, scenario: str = "cpu") -> RunResult:
    return RunResult(
        tool=tool,
        scenario=scenario,
        label=label,
        threads=32,
        shard_size=2500,
        urls=1000,
        wall_s=10.0,
        count=1000,
        successes=1000,
        images_per_s=images_per_s,
        cpu_s=5.0,
        server_cpu_s=0.5,
        machine_busy_s=6.0,
        peak_worker_rss_mb=None,
        workers_seen=2,
        exit_code=0,
    )


def _args(**overrides) -> argparse.Namespace:
    args = run_bench.parse_args(["--skip-latency", "--skip-rss"])
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


FIRST = {"full": 500.0, "reduced": 800.0}
BY_ROUND = {"1": {"full": 400.0, "reduced": 600.0}, "2": {"full": 500.0, "reduced": 700.0}}


def test_summarize_acceptance_uses_the_per_round_ceilings():
    runs = [
        _run("ours", "1", 480.0),
        _run("theirs", "1", 300.0),
        _run("theirs", "2", 350.0),
        _run("ours", "2", 630.0),
        _run("ours", "1", 9999.0, scenario="tune"),  # not a cpu round
    ]
    summary = run_bench.summarize(_args(), runs, FIRST, BY_ROUND, "reduced")
    acc = summary["acceptance"]
    assert acc["ceiling_fraction_by_round"] == {"1": 0.8, "2": 0.9}
    assert acc["ceiling_fraction"] == pytest.approx(0.85)
    assert acc["ceiling_images_per_s_by_round"] == {"1": 600.0, "2": 700.0}
    assert acc["ceiling_images_per_s"] == 650.0
    # the once-measured figures are kept: median ours 555 images/s over the first reduced ceiling
    first = acc["ceiling_first_measurement"]
    assert first == {"ceiling_images_per_s": 800.0, "ceiling_fraction": pytest.approx(555 / 800, abs=1e-3)}
    assert summary["ceilings"] == {"full": 450.0, "reduced": 650.0}
    assert summary["ceilings_first_measurement"] == FIRST
    assert summary["ceiling_fraction"]["ours"] == {"full": pytest.approx(1.23), "reduced": pytest.approx(0.85)}
    assert summary["ceiling_fraction"]["theirs"] == {"full": pytest.approx(0.725), "reduced": 0.5}


def test_summarize_with_skip_theirs_and_print_summary(capsys):
    runs = [_run("ours", "1", 480.0), _run("ours", "2", 630.0)]
    args = _args(skip_theirs=True)
    summary = run_bench.summarize(args, runs, FIRST, BY_ROUND, "reduced")
    assert summary["ceiling_fraction"]["theirs"] is None
    assert summary["acceptance"]["ratio"] is None
    run_bench.print_summary(args, summary, runs, 2)
    out = capsys.readouterr().out
    assert "median of the per-round fractions" in out
    assert "reduced decode: 85% (target >= 80%)" in out
    assert "per round: 1: 600 images/s, 80%, 2: 700 images/s, 90%" in out
    assert "(first measurement: 500, 800)" in out
