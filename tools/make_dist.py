"""make dist: what a cluster needs to run the job, in dist/.

spark_img2ds-VERSION-py3-none-any.whl   pip install it (bootstrap / init actions, Docker images)
spark_img2ds-VERSION.zip                 the pure-Python package for --py-files (dependencies installed apart)
spark_img2ds-env.tar.gz                  a packed virtualenv (venv-pack) of the wheel and its dependencies,
                                         without pyspark (Spark ships its own), for --archives / spark.archives

  python tools/make_dist.py [--out dist] [--no-env]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spark_img2ds"
LEFT_OUT = ("__pycache__",)


def version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def build_zip(out: Path) -> Path:
    """The package's files (modules and package data) in a zip that Python imports from, entries sorted."""
    path = out / f"spark_img2ds-{version()}.zip"
    files = sorted(p for p in PACKAGE.rglob("*") if p.is_file() and not any(part in LEFT_OUT for part in p.parts))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in files:
            info = zipfile.ZipInfo(str(file.relative_to(ROOT)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, file.read_bytes(), zipfile.ZIP_DEFLATED)
    return path


def build_wheel(out: Path) -> Path:
    """The wheel, built in a scratch copy of the sources: setuptools leaves build/ folders where it builds."""
    with tempfile.TemporaryDirectory() as scratch:
        src = Path(scratch) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "dist", "build", "*.egg-info", "__pycache__"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], check=True)
    return next(out.glob("spark_img2ds-*.whl"))


def build_env(out: Path, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel and its pinned dependencies, packed with venv-pack."""
    env = out / "env"
    shutil.rmtree(env, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "-q"]
    subprocess.run([*pip, "install", "-c", str(ROOT / "constraints.txt"), str(wheel)], check=True)
    subprocess.run([*pip, "uninstall", "-y", "pyspark", "py4j"], check=True)  # the cluster's Spark provides them
    packed = out / "spark_img2ds-env.tar.gz"
    packed.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "venv_pack", "-p", str(env), "-o", str(packed), "-q"], check=True)
    shutil.rmtree(env)
    return packed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "dist"))
    parser.add_argument("--no-env", action="store_true", help="skip the packed virtualenv (slow: a full install)")
    parser.add_argument("--zip-only", action="store_true", help="only the --py-files zip")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    built = [build_zip(out)]
    if not args.zip_only:
        wheel = build_wheel(out)
        built.append(wheel)
        if not args.no_env:
            built.append(build_env(out, wheel))
    for path in built:
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
