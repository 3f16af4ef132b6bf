"""A class-data-sharing (AppCDS) archive of the Spark JVM, for the local sessions the job starts.

Loading and verifying Spark's classes is most of a local session's start-up.
Java 17 can dump the classes a run loaded into an archive that later JVMs map
at once: a tiny job went from 12.4 to 9.2 s of wall time with it. The archive
is built once by ``python -m spark_img2ds.demo.jvm_archive`` (``make`` does it), from
a real job on the bundled images, and is named after the JDK and Spark jars it
was made with, so an upgrade simply finds no archive. A truncated archive would
crash the JVM, so an archive counts only once its ``.ok`` file records its
exact size, and both are renamed into place after the dumping JVM has exited.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
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


def archive_path(java: str) -> Path | None:
    """Where the archive for this JDK and Spark lives (it may not exist); None without Spark."""
    jars = _spark_jars()
    if jars is None:
        return None
    return cache_dir() / f"spark-{archive_key(java, jars)}.jsa"


def _ok_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".ok")


def usable_archive(java: str) -> Path | None:
    """The archive, if it was built completely for this JDK (the java executable given) and Spark."""
    try:
        archive = archive_path(java)
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


def build(java: str, workload: list[str], quiet: bool = False) -> Path:
    """Build (or rebuild) the archive for this JDK and Spark; returns its path.

    workload: the command of a child process that runs Spark jobs in a local session whose
    driver JVM has the extra option ``-XX:ArchiveClassesAtExit=PATH``, PATH being given
    as the command's last argument, and lets that JVM exit (it dumps the archive then).
    """
    archive = archive_path(java)
    if archive is None:
        raise RuntimeError("no Spark jars found: nothing to build an archive for")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f"{archive.name}.tmp-{os.getpid()}")
    started = time.monotonic()
    out = subprocess.DEVNULL if quiet else None
    try:
        proc = subprocess.run([*workload, str(tmp)], stdout=out, stderr=out)
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
