"""The JVM class archive: built by a real run, mapped by later JVMs, never used when incomplete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_img2ds.driver.session import class_archive, java_executable
from spark_img2ds.tuning import jvm_cache


def child_env(cache: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        **{jvm_cache.CACHE_ENV: str(cache)},
    )
    return e


def run_module(cache: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """python -m spark_img2ds.demo.jvm_archive, as make runs it, with its cache in `cache`."""
    cmd = [sys.executable, "-m", "spark_img2ds.demo.jvm_archive", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**child_env(cache), **(env or {})}, timeout=600)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(jvm_cache.CACHE_ENV, str(folder))
    return folder


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(jvm_cache.CACHE_ENV, str(tmp_path / "x"))
    assert jvm_cache.cache_dir() == tmp_path / "x"
    monkeypatch.delenv(jvm_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jvm_cache.cache_dir() == tmp_path / "xdg" / "spark_img2ds"


def test_archive_key_changes_with_any_jar(tmp_path):
    java = Path(sys.executable)  # any file stands in for the java binary here
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "a.jar").write_bytes(b"one")
    first = jvm_cache.archive_key(str(java), jars)
    assert jvm_cache.archive_key(str(java), jars) == first
    (jars / "a.jar").write_bytes(b"two!")
    assert jvm_cache.archive_key(str(java), jars) != first
    (jars / "b.jar").write_bytes(b"")
    assert len({first, jvm_cache.archive_key(str(java), jars)}) == 2


def test_no_archive_means_no_options(cache):
    assert class_archive() is None
    assert jvm_cache.java_options(None) == ""


@pytest.mark.parametrize("recorded", [None, "12", "not a size"])
def test_an_archive_without_a_matching_size_record_is_never_used(cache, recorded):
    """A truncated archive crashes the JVM (SIGBUS), so only a complete, recorded one counts."""
    archive = jvm_cache.archive_path(java_executable())
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"x" * 100)
    if recorded is not None:
        archive.with_name(archive.name + ".ok").write_text(recorded)
    assert class_archive() is None
    archive.with_name(archive.name + ".ok").write_text("100")
    assert class_archive() == archive


@pytest.mark.slow
def test_built_archive_is_mapped_by_the_next_local_session(tmp_path):
    cache = tmp_path / "cache"
    built = run_module(cache, "--quiet")
    assert built.returncode == 0, built.stderr[-2000:]
    archives = sorted(cache.glob("spark-*.jsa"))
    assert len(archives) == 1 and not list(cache.glob("*.tmp-*"))
    archive = archives[0]
    assert (cache / (archive.name + ".ok")).read_text() == str(archive.stat().st_size)
    assert str(archive) in built.stdout

    script = (
        "from spark_img2ds.config import Config\n"
        "from spark_img2ds.driver.session import get_session\n"
        "from spark_img2ds.driver.session import class_archive\n"
        "spark = get_session(Config(url_list='x', processes_count=2))\n"
        "jvm = spark.sparkContext._jvm\n"
        "pid = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid()\n"
        "print('ROWS', spark.range(100).count())\n"
        "print('MAPPED', str(class_archive()) in open(f'/proc/{pid}/maps').read())\n"
        "spark.stop()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=child_env(cache), timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ROWS 100" in proc.stdout and "MAPPED True" in proc.stdout

    rerun = run_module(cache, "--if-missing")
    assert rerun.returncode == 0 and "(exists)" in rerun.stdout


def fake_archives(folder: Path, n: int) -> None:
    """n archives with their .ok files, archive i built (and last used) at time 1000 + i."""
    for i in range(n):
        for path in (folder / f"spark-{i}.jsa", folder / f"spark-{i}.jsa.ok"):
            path.write_text("1")
            os.utime(path, (1000 + i, 1000 + i))


def test_prune_keeps_the_newest_archives(tmp_path):
    fake_archives(tmp_path, 5)
    jvm_cache._prune(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "spark-2.jsa",
        "spark-2.jsa.ok",
        "spark-3.jsa",
        "spark-3.jsa.ok",
        "spark-4.jsa",
        "spark-4.jsa.ok",
    ]


def test_a_failed_build_says_so_and_leaves_no_archive(tmp_path):
    """A Spark that cannot start (SPARK_HOME without spark-submit): exit 1, one clear line, nothing kept."""
    cache = tmp_path / "cache"
    broken_home = tmp_path / "spark"
    (broken_home / "jars").mkdir(parents=True)
    env = {**child_env(cache), "SPARK_HOME": str(broken_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "spark_img2ds.demo.jvm_archive", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "no archive was written" in proc.stderr
    assert not list(cache.glob("*")) if cache.exists() else True


def test_prune_keeps_an_old_archive_that_is_still_in_use(tmp_path):
    fake_archives(tmp_path, 5)
    os.utime(tmp_path / "spark-0.jsa.ok", (2000, 2000))  # the oldest build, mapped by a session since
    jvm_cache._prune(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.glob("*.jsa")) == ["spark-0.jsa", "spark-3.jsa", "spark-4.jsa"]


def test_using_the_archive_records_the_use(cache):
    archive = jvm_cache.archive_path(java_executable())
    if archive is None:
        pytest.skip("no Java or Spark jars")
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"archive")
    ok = archive.with_name(archive.name + ".ok")
    ok.write_text(str(len(b"archive")))
    os.utime(ok, (1000, 1000))
    assert class_archive() == archive
    assert ok.stat().st_mtime > 1000
    ok.write_text("999")  # a size that does not match: not used, and not recorded as used
    os.utime(ok, (1000, 1000))
    assert class_archive() is None
    assert ok.stat().st_mtime == 1000
