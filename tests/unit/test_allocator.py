"""The cap on glibc's malloc arenas, seen from a real worker's allocator."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys

import pytest

from spark_img2ds.tuning.allocator import cap_malloc_arenas, user_chose_arenas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

# A fresh interpreter downloads one shard with a real worker and many threads, then asks
# glibc how many arenas it holds (malloc_stats prints "Arena N:" per arena to stderr).
WORKER_RUN = """
import ctypes, sys
import pyarrow as pa
from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import INDEX_COL, SHARD_COL
from spark_img2ds.worker.task import partition_worker
base, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = ["big.jpg", "noise.png", "flower.jpg", "wide.jpg", "pic.webp", "gray.jpg"]
urls = [f"{base}/img/{names[i % len(names)]}" for i in range(96)]
cfg = Config.from_dict(dict(url_list="unused", output_folder=out, thread_count=16, number_sample_per_shard=len(urls),
                            image_size=64, allow_private_networks=True, malloc_arena_max=limit))
batch = pa.RecordBatch.from_pydict({SHARD_COL: [0] * len(urls), INDEX_COL: list(range(len(urls))), "url": urls})
rows = pa.Table.from_batches(list(partition_worker(cfg)(iter([batch])))).to_pylist()
assert [r["ok"] for r in rows] == [True], rows
sys.stderr.flush()
ctypes.CDLL(None).malloc_stats()
"""


def arenas_after_a_shard(base: str, limit: int, out: str, env: dict[str, str] | None = None) -> int:
    run = subprocess.run(
        [sys.executable, "-c", WORKER_RUN, base, str(limit), out],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return len(re.findall(r"^Arena \d+:", run.stderr, re.MULTILINE))


def test_a_worker_keeps_to_the_arena_cap_where_its_threads_would_take_many(server, tmp_path):
    capped = arenas_after_a_shard(server.url, 2, str(tmp_path / "capped"))
    default = arenas_after_a_shard(server.url, 0, str(tmp_path / "default"))
    assert 1 <= capped <= 2
    assert default > 2  # without the cap the same shard spreads over more arenas


@pytest.mark.parametrize(("name", "value"), [("MALLOC_ARENA_MAX", "3"), ("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")])
def test_the_users_arena_setting_is_left_in_force(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert cap_malloc_arenas(1) is False  # never calls mallopt over the user's choice


def test_a_shard_under_the_users_malloc_arena_max_keeps_to_it(server, tmp_path):
    arenas = arenas_after_a_shard(server.url, 1, str(tmp_path / "out"), env={"MALLOC_ARENA_MAX": "3"})
    assert arenas == 3


@pytest.mark.parametrize(
    ("environ", "chosen"),
    [
        ({}, False),
        ({"MALLOC_ARENA_MAX": "4"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}, False),
    ],
)
def test_user_chose_arenas(environ, chosen):
    assert user_chose_arenas(environ) is chosen


def test_a_zero_limit_leaves_the_allocator_alone():
    assert cap_malloc_arenas(0) is False


def test_a_c_library_without_mallopt_or_none_at_all_is_no_error(tmp_path):
    """As on musl or macOS: the cap is skipped, the download goes on."""
    source = tmp_path / "probe.c"
    source.write_text("int img2ds_probe(void) { return 7; }\n")
    lib = tmp_path / "libprobe.so"  # linked against nothing, so no mallopt is in reach
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(lib), str(source)], check=True, timeout=60)
    assert ctypes.CDLL(str(lib)).img2ds_probe() == 7
    assert cap_malloc_arenas(2, library=str(lib)) is False
    assert cap_malloc_arenas(2, library=str(tmp_path / "libmissing.so")) is False
