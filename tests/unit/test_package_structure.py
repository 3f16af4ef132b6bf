"""The package's layout rules: no import cycles, speed tricks apart, image code free of the job Config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "spark_img2ds"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every spark_img2ds module that a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("spark_img2ds"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("spark_img2ds"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # "from pkg import module"
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}


def test_the_graph_sees_the_imports_it_should():
    g = graph()
    assert "spark_img2ds.worker.task" in g["spark_img2ds.driver.job"]  # a function-level import
    assert "spark_img2ds.dataset.storage" in g["spark_img2ds.driver.job"]  # "from package import module"


def test_no_import_cycles():
    g = graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = path[path.index(node) :] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in sorted(g[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(g):
        visit(start, [])


@pytest.mark.parametrize(
    ("folder", "allowed"),
    [
        ("tuning", ("spark_img2ds.tuning",)),
        ("imaging", ("spark_img2ds.imaging", "spark_img2ds.errors")),
        ("net", ("spark_img2ds.net",)),
        ("dataset", ("spark_img2ds.dataset", "spark_img2ds.errors")),
    ],
)
def test_folders_import_only_what_their_place_on_the_data_path_allows(folder, allowed):
    for path in (PACKAGE / folder).rglob("*.py"):
        bad = sorted(m for m in imports_of(path) if not m.startswith(allowed))
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_no_module_is_over_the_size_limit():
    sizes = {p.relative_to(PACKAGE): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_test_modules_have_unique_names():
    """pytest imports test files by their basename (no packages): two of one name break collection."""
    names = [p.name for p in (PACKAGE.parent / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
