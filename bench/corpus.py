"""The benchmark corpus: real photographs made web-like, built once and cached.

The images come from ``../shared/bench/make_corpus.py`` (deterministic for a given
size and seed); the URL lists serve the same corpus several times under distinct
paths (``/r{k}/{file}``), so a run is long enough that start-up does not dominate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MAKE_CORPUS = REPO.parent / "shared" / "bench" / "make_corpus.py"
DONE_MARKER = ".complete"


@dataclass(frozen=True)
class Corpus:
    root: Path
    entries: list[dict]  # manifest rows: file, format, width, height, bytes, ...
    stats: dict

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def total_bytes(self) -> int:
        return sum(int(e["bytes"]) for e in self.entries)


def make_corpus_script(explicit: str | None) -> Path:
    """The corpus builder: --make-corpus, else $BENCH_MAKE_CORPUS, else ../shared/bench/make_corpus.py
    beside this repository or, for a clone of a local repository, beside the repository it was cloned from."""
    given = explicit or os.environ.get("BENCH_MAKE_CORPUS")
    candidates = [Path(given)] if given else [DEFAULT_MAKE_CORPUS, *_beside_origin()]
    for path in candidates:
        if path.is_file():
            return path
    raise SystemExit(
        f"bench: the corpus builder was not found (looked for {', '.join(map(str, candidates))}). It lives in "
        "the developers' shared folder (../shared/bench/make_corpus.py beside the repository); pass "
        "--make-corpus PATH or set BENCH_MAKE_CORPUS to its location."
    )


def _beside_origin() -> list[Path]:
    """../shared/bench/make_corpus.py next to the local repository this one was cloned from, if any."""
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO), "remote", "get-url", "origin"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    url = url.removeprefix("file://")
    if not url or not os.path.isabs(url) or not os.path.isdir(url):
        return []
    return [Path(url).resolve().parent / "shared" / "bench" / "make_corpus.py"]


def ensure_corpus(out_dir: Path, n: int, seed: int, script: str | None) -> Corpus:
    """The cached corpus of n images for seed, built first if it is missing or incomplete."""
    root = out_dir / f"corpus-n{n}-s{seed}"
    if not (root / DONE_MARKER).exists():
        builder = make_corpus_script(script)
        if root.exists():
            shutil.rmtree(root)
        print(f"bench: building a corpus of {n} images (seed {seed}) with {builder} ...", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(builder), "--out", str(root), "--n", str(n), "--seed", str(seed)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"bench: building the corpus failed:\n{proc.stderr[-3000:]}")
        (root / "stats.json").write_text(_last_json(proc.stdout))
        (root / DONE_MARKER).write_text("")
        print(f"bench: corpus built in {time.monotonic() - started:.0f}s", flush=True)
    entries = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]
    stats_file = root / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    return Corpus(root=root, entries=entries, stats=stats)


def _last_json(stdout: str) -> str:
    """The JSON object the builder prints at the end (its summary), or {}."""
    start = stdout.find("{")
    if start < 0:
        return "{}"
    try:
        return json.dumps(json.loads(stdout[start:]), indent=1)
    except json.JSONDecodeError:
        return "{}"


def urls(corpus: Corpus, prefix: str, total: int) -> list[str]:
    """total distinct URLs: copy k of image f is {prefix}r{k}/{f}, copies in corpus order."""
    n = len(corpus.entries)
    return [f"{prefix.rstrip('/')}/r{i // n}/{corpus.entries[i % n]['file']}" for i in range(total)]


def write_url_list(path: Path, url_list: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(u + "\n" for u in url_list))
    return path
