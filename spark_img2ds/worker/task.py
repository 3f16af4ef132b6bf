"""The mapInArrow task: a partition's rows in, one result row per shard out.

Each partition carries whole shards, sorted by shard and index (driver/sharding.py).
The task sets up the process (one OpenCV thread, the malloc arena cap, a CPU of its
own), starts its thread pool and hands the shards to the shard loop.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import SHARD_COL
from spark_img2ds.dataset.heartbeat import HEARTBEAT_SECONDS
from spark_img2ds.tuning.affinity import pinned_cpu
from spark_img2ds.tuning.allocator import cap_malloc_arenas
from spark_img2ds.worker.rewrite import RewrittenShard
from spark_img2ds.worker.sample import SampleMaker, pool_size
from spark_img2ds.worker.shards import OpenShard, run_shards
from spark_img2ds.worker.watchdog import ShardWatchdog

RESULT_SCHEMA = pa.schema(
    [
        pa.field("shard_id", pa.int64()),
        pa.field("ok", pa.bool_()),
        pa.field("stats", pa.string()),
        pa.field("error", pa.string()),
    ]
)
RESULT_DDL = "shard_id long, ok boolean, stats string, error string"


def start_threads(pool: ThreadPoolExecutor, n: int, timeout: float = 30.0) -> None:
    """Start all n threads of the pool before any work is given to it.

    A ThreadPoolExecutor starts a thread per submit, and Thread.start() waits until
    the new thread holds the GIL; once the first threads decode images, every start
    waits behind them, and the first window of a shard took ~2.8 s to submit.
    """
    gate = threading.Barrier(n + 1)
    for _ in range(n):
        pool.submit(gate.wait, timeout)
    try:
        gate.wait(timeout)
    except threading.BrokenBarrierError:  # threads not all started in time: they start on demand
        gate.abort()


def _shard_tables(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, pa.Table]]:
    """Group a partition's batches, sorted by shard id, into one table per shard."""
    current: int | None = None
    parts: list[pa.RecordBatch] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        ids = batch.column(SHARD_COL).to_pylist()
        start = 0
        for pos in range(1, len(ids) + 1):
            if pos == len(ids) or ids[pos] != ids[start]:
                if current is not None and ids[start] != current:
                    yield current, pa.Table.from_batches(parts)
                    parts = []
                current = ids[start]
                parts.append(batch.slice(start, pos - start))
                start = pos
    if current is not None:
        yield current, pa.Table.from_batches(parts)


def _result(shard_id: int, ok: bool, stats: str | None, error: str | None) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"shard_id": shard_id, "ok": ok, "stats": stats, "error": error}], RESULT_SCHEMA)


def partition_worker(
    cfg: Config,
    samples_done=None,
    shards_done=None,
    heartbeat_every: float = HEARTBEAT_SECONDS,
    run_tag: str | None = None,
    run_info: dict | None = None,
) -> Callable:
    """The function given to mapInArrow: one result row per shard of the partition.

    run_tag names the run, so that its tasks may use the CPUs that its finished tasks left idle;
    run_info (job_id, started) is what the writers record as provenance.
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import cv2

        cv2.setNumThreads(1)
        cap_malloc_arenas(cfg.malloc_arena_max)  # before the download threads start
        make_sample = SampleMaker(cfg)
        bump = (lambda: samples_done.add(1)) if samples_done is not None else None
        with (
            pinned_cpu(cfg.pin_cpus, tag=run_tag),
            ShardWatchdog(cfg.shard_stall_limit) as watchdog,
            ThreadPoolExecutor(max_workers=pool_size(cfg), thread_name_prefix="img2ds") as pool,
        ):
            start_threads(pool, pool_size(cfg))
            tables = _shard_tables(batches)
            open_shard = RewrittenShard if cfg.retry_failed_from else OpenShard
            shards = run_shards(cfg, tables, make_sample, pool, bump, watchdog, heartbeat_every, run_info, open_shard)
            for shard_id, outcome in shards:
                if isinstance(outcome, Exception):
                    detail = "".join(traceback.format_exception_only(type(outcome), outcome)).strip()
                    yield _result(shard_id, False, None, detail)
                    continue
                if shards_done is not None:
                    shards_done.add(1)
                yield _result(shard_id, True, json.dumps(outcome.to_json()), None)

    return run
