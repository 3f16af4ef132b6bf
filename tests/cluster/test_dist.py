"""The --py-files zip of `make dist`, submitted to the standalone cluster from a virtualenv without the package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers.cluster import ROOT, StandaloneCluster
from tests.helpers.e2e import read_metadata

pytestmark = pytest.mark.slow


def bare_env(path: Path) -> str:
    """A virtualenv that sees the dependencies of this one (a .pth line) but not spark_img2ds itself.

    A path in a .pth file is added to sys.path, but the .pth files inside it are not read: the
    editable install of spark_img2ds (a .pth of its own) stays out of reach.
    """
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(python)


def test_the_py_files_zip_runs_the_job_on_a_cluster_from_a_bare_virtualenv(server, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_dist.py"), "--out", str(tmp_path / "dist"),
                    "--zip-only"], check=True)  # fmt: skip
    package = next((tmp_path / "dist").glob("spark_img2ds-*.zip"))
    assert all(n.startswith("spark_img2ds/") and "__pycache__" not in n for n in zipfile.ZipFile(package).namelist())
    python = bare_env(tmp_path / "env")
    check = "import cv2, pyarrow, fsspec, urllib3\ntry:\n import spark_img2ds\nexcept ImportError:\n print('absent')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert found.stdout.strip() == "absent", found.stderr

    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{server.url}/img/{n}\n" for n in ("china.jpg", "coffee.jpg", "flower.jpg")))
    out = tmp_path / "out"
    cluster = StandaloneCluster(tmp_path / "cluster", workers=1, cores=1)
    try:
        cluster.start()
        job = cluster.submit(
            ["--url_list", str(urls), "--output_folder", str(out), "--output_format", "webdataset",
             "--image_size", "64", "--allow_private_networks", "--number_sample_per_shard", "2"],
            submit_args=["--py-files", str(package)],
            python=python,
        )  # fmt: skip
        assert job.wait(timeout=240) == 0, (tmp_path / "cluster" / "driver.log").read_text()[-3000:]
    finally:
        cluster.stop()
    assert [r["status"] for r in read_metadata(str(out))] == ["success"] * 3
    assert (out / "_SUCCESS").exists()
