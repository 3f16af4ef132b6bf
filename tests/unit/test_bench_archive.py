"""The benchmark measures spark_img2ds with the JVM class archive that `make` gives every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run_bench
from spark_img2ds.driver.session import java_executable
from spark_img2ds.tuning import jvm_cache


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(jvm_cache.CACHE_ENV, str(folder))
    return folder


def write_archive() -> Path:
    """A complete archive (bytes and .ok record) where this JDK and Spark look for theirs."""
    archive = jvm_cache.archive_path(java_executable())
    assert archive is not None, "the suite runs with Java and pyspark installed"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"x" * 10)
    archive.with_name(archive.name + ".ok").write_text("10")
    return archive


def test_an_archive_in_place_is_reported_and_not_built_again(cache):
    archive = write_archive()
    built = []
    assert run_bench.ensure_class_archive(lambda: built.append(1)) == str(archive)
    assert not built


def test_a_missing_archive_is_built_before_the_runs(cache, capsys):
    built = []

    def build() -> None:
        built.append(write_archive())

    assert run_bench.ensure_class_archive(build) == str(built[0])
    assert "building it" in capsys.readouterr().out


def test_an_incomplete_archive_counts_as_missing(cache):
    archive = write_archive()
    archive.write_bytes(b"x" * 3)  # truncated: its .ok records 10 bytes
    assert run_bench.ensure_class_archive(write_archive) == str(archive)
    assert archive.stat().st_size == 10


def test_a_failed_build_leaves_the_bench_running_and_says_why(cache, capsys):
    def build() -> None:
        raise RuntimeError("the archive run failed (exit code 1)")

    assert run_bench.ensure_class_archive(build) is None
    out = capsys.readouterr().out
    assert "warning: no JVM class archive" in out and "exit code 1" in out
