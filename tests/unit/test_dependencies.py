"""pyproject declares exactly the third-party packages that spark_img2ds imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Declared without an import: fsspec loads it by name for s3:// output folders.
LOADED_BY_NAME = {"s3fs"}


def imported_modules() -> set[str]:
    """Top-level names of every module the package's sources import, stdlib and itself left out."""
    found = set()
    for path in (ROOT / "spark_img2ds").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"spark_img2ds"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def test_every_imported_package_is_declared_and_every_declared_one_is_imported():
    providers = importlib.metadata.packages_distributions()
    needed = set()
    for module in imported_modules():
        assert module in providers, f"{module} is imported but no installed distribution provides it"
        needed.update(normalise(d) for d in providers[module])
    assert declared() == needed | LOADED_BY_NAME
