"""PySpark's Python worker daemon, started from the pyspark package installed here.

Spark puts its bundled pyspark.zip first on the path of every Python worker.
Python keeps no compiled bytecode for modules read from a zip, so each daemon
compiles pyspark's sources again (about 0.9 s of CPU against 0.3 s from bytecode,
spent while the JVM plans the job), and so does each worker for what it imports
later. When that zip lies inside the pyspark package this interpreter has
installed (a pip-installed pyspark, the local-mode default), both hold the same
files, and importing the installed package uses the bytecode pip compiled.

Local sessions name this module in spark.python.daemon.module (driver/session.py).
It must import nothing heavy before forking workers: it runs before them all.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys


def installed_pyspark(path: list[str]) -> str | None:
    """The directory of the pyspark package found on path outside zip files, if any."""
    plain = [p for p in path if not p.endswith(".zip")]
    spec = importlib.machinery.PathFinder.find_spec("pyspark", plain)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.abspath(next(iter(spec.submodule_search_locations)))


def without_bundled_zips(path: list[str], pyspark_dir: str) -> list[str]:
    """path without the zips that ship inside pyspark_dir (its python/lib folder)."""
    bundled = os.path.join(pyspark_dir, "python", "lib") + os.sep
    return [p for p in path if not (p.endswith(".zip") and os.path.abspath(p).startswith(bundled))]


def main() -> None:
    found = installed_pyspark(sys.path)
    if found is not None:
        sys.path[:] = without_bundled_zips(sys.path, found)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
