"""The worker daemon's path fix, and the light package import it depends on."""

from __future__ import annotations

import os
import subprocess
import sys

from spark_img2ds.tuning.worker_daemon import installed_pyspark, without_bundled_zips


def make_pyspark(root) -> str:
    pkg = root / "pyspark"
    (pkg / "python" / "lib").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    return str(pkg)


def test_the_zips_bundled_in_the_installed_pyspark_are_dropped_and_nothing_else(tmp_path):
    pkg = make_pyspark(tmp_path)
    lib = os.path.join(pkg, "python", "lib")
    path = [
        "/work",
        os.path.join(lib, "pyspark.zip"),
        os.path.join(lib, "py4j-0.10.9.7-src.zip"),
        "/usr/lib/python311.zip",
        "/elsewhere/pyspark.zip",  # another copy: not the installed one's, so kept
        str(tmp_path),
    ]
    kept = ["/work", "/usr/lib/python311.zip", "/elsewhere/pyspark.zip", str(tmp_path)]
    assert without_bundled_zips(path, pkg) == kept


def test_installed_pyspark_is_found_outside_zips_only(tmp_path):
    pkg = make_pyspark(tmp_path / "site")
    zipped = [str(tmp_path / "lib" / "pyspark.zip")]
    assert installed_pyspark(zipped + [str(tmp_path / "site")]) == pkg
    assert installed_pyspark(zipped + [str(tmp_path / "empty")]) is None  # a cluster's workers may only have the zip


def test_importing_the_package_loads_nothing_heavy_yet_exports_the_api():
    """The daemon imports the package before forking every worker; the API still resolves."""
    script = (
        "import sys, spark_img2ds\n"
        "heavy = [m for m in ('pyspark', 'numpy', 'pyarrow', 'cv2', 'fsspec') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "from spark_img2ds import download, Config, ConfigError, InputError, Img2dsError, Summary, run\n"
        "print('API', download.__module__, Config.__module__, spark_img2ds.__version__)\n"
        "try:\n"
        "    spark_img2ds.nothing\n"
        "except AttributeError as err:\n"
        "    print('MISSING', err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "API spark_img2ds.api spark_img2ds.config 0.1.0" in proc.stdout
    assert "has no attribute 'nothing'" in proc.stdout
