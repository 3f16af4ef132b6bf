"""The README documents what the code defines: every option, every output format, the Python version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from spark_img2ds.config import option_fields
from spark_img2ds.writers import FORMATS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def options_table() -> str:
    start = README.index("## Options")
    return README[start : README.index("\n## ", start + 1)]


def test_every_option_has_a_row_in_the_options_table():
    rows = [line.split("|")[1] for line in options_table().splitlines() if line.startswith("| ")]
    named = {name.strip() for row in rows for name in row.split(",")}
    assert sorted(f.name for f in option_fields() if f.name not in named) == []


def test_every_output_format_is_documented():
    formats_row = next(line for line in options_table().splitlines() if line.startswith("| output_format "))
    assert [f for f in FORMATS if f not in formats_row] == []
    assert all(re.search(rf"`{f}`|\b{f}:", README) for f in FORMATS if f != "webdataset")


def test_the_readme_states_the_python_version_that_pyproject_requires():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = project["requires-python"].removeprefix(">=")
    assert f"Python {minimum}+" in README
