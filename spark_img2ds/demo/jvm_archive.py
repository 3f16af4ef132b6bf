"""Build the JVM class archive (tuning/jvm_cache.py) from real jobs on the bundled images.

    python -m spark_img2ds.demo.jvm_archive [--if-missing] [--quiet]

``make`` runs it; local sessions then start 2-3 s sooner.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from spark_img2ds.tuning import jvm_cache

PROG = "python -m spark_img2ds.demo.jvm_archive"


def _workload(dump_to: str) -> None:
    """Run in a child process: real jobs on the bundled images in a JVM that dumps its classes at exit."""
    from pyspark import SparkContext

    from spark_img2ds.config import Config
    from spark_img2ds.demo.runner import DATA, write_url_list
    from spark_img2ds.demo.server import SampleServer
    from spark_img2ds.driver.job import run
    from spark_img2ds.driver.session import get_session

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


def build(quiet: bool = False) -> Path:
    """Build (or rebuild) the archive for the JDK and Spark found here; RuntimeError if it cannot."""
    from spark_img2ds.driver.session import java_executable

    java = java_executable()
    if java is None:
        raise RuntimeError("Java was not found: nothing to build an archive for")
    return jvm_cache.build(java, [sys.executable, "-m", "spark_img2ds.demo.jvm_archive", "--dump-to"], quiet)


def main(argv: list[str] | None = None) -> int:
    from spark_img2ds.driver.session import class_archive

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--dump-to", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="do not show the archive run's output")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when a usable archive exists")
    args = parser.parse_args(argv)
    if args.dump_to:
        _workload(args.dump_to)
        return 0
    existing = class_archive() if args.if_missing else None
    if existing is not None:
        print(f"JVM class archive: {existing} (exists)")
        return 0
    try:
        build(args.quiet)
    except RuntimeError as err:
        print(f"jvm_archive: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
