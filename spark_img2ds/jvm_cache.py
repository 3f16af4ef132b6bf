"""A class-data-sharing (AppCDS) archive of the Spark JVM, for the local sessions the job starts.

Loading and verifying Spark's classes is most of a local session's start-up.
Java 17 can dump the classes a run loaded into an archive that later JVMs map
at once: a tiny job went from 12.4 to 9.2 s of wall time with it. The archive
is built once by ``python -m spark_img2ds.jvm_cache`` (``make`` does it), from
a real job on the bundled images, and is named after the JDK and Spark jars it
was made with, so an upgrade simply finds no archive. A truncated archive would
crash the JVM, so an archive counts only once its ``.ok`` file records its
exact size, and both are renamed into place after the dumping JVM has exited.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE_ENV = "SPARK_IMG2DS_CACHE_DIR"
KEEP_ARCHIVES = 3  # archives of other JDK/Spark installs kept beside the newest (about 140 MB each)


def cache_dir() -> Path:
    """$SPARK_IMG2DS_CACHE_DIR, else $XDG_CACHE_HOME/spark_img2ds, else ~/.cache/spark_img2ds."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spark_img2ds"


def _spark_jars() -> Path | None:
    home = os.environ.get("SPARK_HOME")
    if home and os.path.isdir(os.path.join(home, "jars")):
        return Path(home, "jars")
    try:
        import pyspark
    except ImportError:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    return jars if jars.is_dir() else None


def _fingerprint(paths: list[Path]) -> list[str]:
    out = []
    for p in paths:
        st = p.stat()
        out.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return out


def archive_key(java: str, jars: Path) -> str:
    """What the archive depends on: the JDK's binaries and every Spark jar (path, size, mtime)."""
    home = Path(os.path.realpath(java)).parent.parent
    jdk = [p for p in (home / "lib" / "modules", home / "lib" / "server" / "libjvm.so", Path(java)) if p.exists()]
    parts = [os.path.realpath(java), *_fingerprint(jdk), *_fingerprint(sorted(jars.glob("*.jar")))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def archive_path() -> Path | None:
    """Where the archive for this JDK and Spark lives (it may not exist); None without Java or Spark."""
    from spark_img2ds.session import java_executable

    java, jars = java_executable(), _spark_jars()
    if java is None or jars is None:
        return None
    return cache_dir() / f"spark-{archive_key(java, jars)}.jsa"


def _ok_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".ok")


def usable_archive() -> Path | None:
    """The archive, if it was built completely for this JDK and Spark."""
    try:
        archive = archive_path()
        if archive is None:
            return None
        ok = _ok_file(archive)
        if ok.read_text().strip() != str(archive.stat().st_size):
            return None
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):  # a read-only cache still serves; it just keeps no record of use
        os.utime(ok)  # the .ok's mtime says when the archive was last used: pruning keeps those in use
    return archive


def java_options(archive: Path | None) -> str:
    """JVM options that map the archive quietly (a JVM that cannot use it starts without it)."""
    if archive is None:
        return ""
    return f"-XX:SharedArchiveFile={archive} -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"


def _workload(dump_to: str) -> None:
    """Run in a child process: real jobs on the bundled images in a JVM that dumps its classes at exit."""
    from pyspark import SparkContext

    from spark_img2ds.config import Config
    from spark_img2ds.demo import DATA, write_url_list
    from spark_img2ds.job import run
    from spark_img2ds.sample_server import SampleServer
    from spark_img2ds.session import get_session

    work = Path(tempfile.mkdtemp(prefix="img2ds-cds-"))
    try:
        with SampleServer(DATA) as server:
            csv_list = work / "urls.csv"
            write_url_list(csv_list, server.url, 1)
            txt_list = work / "urls.txt"
            txt_list.write_text("".join(line.split(",", 1)[0] + "\n" for line in csv_list.read_text().splitlines()[1:]))
            common = {"processes_count": 2, "thread_count": 4, "allow_private_networks": True, "timeout": 5}
            first = Config.from_dict(
                {
                    "url_list": str(csv_list),
                    "input_format": "csv",
                    "caption_col": "caption",
                    "output_folder": str(work / "wds"),
                    "output_format": "webdataset",
                    **common,
                }
            )
            spark = get_session(first, java_options=f"-XX:ArchiveClassesAtExit={dump_to} -Xlog:cds=off")
            run(first, spark)
            second = {"url_list": str(txt_list), "output_folder": str(work / "pq"), "output_format": "parquet"}
            run(Config.from_dict({**second, **common}), spark)
        spark.stop()
        gateway = SparkContext._gateway
        proc = getattr(gateway, "proc", None)
        if proc is not None:  # the JVM exits when its stdin closes, and dumps the archive on the way out
            proc.stdin.close()
            proc.wait(timeout=300)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _last_used(archive: Path) -> float:
    """When the archive was built or last mapped by a session (its .ok file is touched on use)."""
    try:
        used = _ok_file(archive).stat().st_mtime
    except OSError:
        used = 0.0
    return max(archive.stat().st_mtime, used)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the `keep` most recently built or used archives (other venvs or versions).

    By use, not by build: fresh clones building their own archives must not evict the
    one a long-lived checkout keeps using (that happened, and its runs started 2-3 s slower).
    """
    archives = sorted(folder.glob("spark-*.jsa"), key=_last_used, reverse=True)
    for old in archives[keep:]:
        old.unlink(missing_ok=True)
        _ok_file(old).unlink(missing_ok=True)


def build(quiet: bool = False) -> Path:
    """Build (or rebuild) the archive for this JDK and Spark; returns its path."""
    archive = archive_path()
    if archive is None:
        raise RuntimeError("no Java or no Spark jars found: nothing to build an archive for")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f"{archive.name}.tmp-{os.getpid()}")
    started = time.monotonic()
    out = subprocess.DEVNULL if quiet else None
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "spark_img2ds.jvm_cache", "--dump-to", str(tmp)], stdout=out, stderr=out
        )
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise RuntimeError(f"the archive run failed (exit code {proc.returncode}); no archive was written")
        ok = _ok_file(tmp)
        ok.write_text(str(tmp.stat().st_size))
        os.replace(tmp, archive)
        os.replace(ok, _ok_file(archive))
    finally:
        tmp.unlink(missing_ok=True)
        _ok_file(tmp).unlink(missing_ok=True)
    _prune(archive.parent, keep=KEEP_ARCHIVES)
    size_mb = archive.stat().st_size / 1e6
    print(f"JVM class archive: {archive} ({size_mb:.0f} MB, built in {time.monotonic() - started:.0f}s)")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_img2ds.jvm_cache", description=__doc__.split("\n")[0])
    parser.add_argument("--dump-to", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="do not show the archive run's output")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when a usable archive exists")
    args = parser.parse_args(argv)
    if args.dump_to:
        _workload(args.dump_to)
        return 0
    existing = usable_archive() if args.if_missing else None
    if existing is not None:
        print(f"JVM class archive: {existing} (exists)")
        return 0
    try:
        build(args.quiet)
    except RuntimeError as err:
        print(f"jvm_cache: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
