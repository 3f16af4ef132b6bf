"""The per-partition worker: download, process and write whole shards.

Runs in the Spark executors' Python workers. It holds no state between tasks:
a shard is a pure function of its input rows and the config, so a retried or
speculative task writes the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from spark_img2ds import keys, storage
from spark_img2ds.affinity import pinned_cpu
from spark_img2ds.config import Config
from spark_img2ds.fetch import Fetcher, FetchError
from spark_img2ds.image import ImageError, ImageProcessor, extract_exif, hash_bytes
from spark_img2ds.stats import ShardStats
from spark_img2ds.watchdog import ShardWatchdog
from spark_img2ds.writers import WRITERS, metadata_schema

SHARD_COL = "_img2ds_shard"
INDEX_COL = "_img2ds_index"
URL_COL = "url"
CAPTION_COL = "caption"
RESULT_SCHEMA = pa.schema(
    [
        pa.field("shard_id", pa.int64()),
        pa.field("ok", pa.bool_()),
        pa.field("stats", pa.string()),
        pa.field("error", pa.string()),
    ]
)
RESULT_DDL = "shard_id long, ok boolean, stats string, error string"
WINDOW_PER_THREAD = 4
# Threads beyond thread_count, so that decoding and encoding never hold a download slot.
# Each Python worker is pinned to one core, so two cover the image work it can do at once.
PROCESSING_THREADS = 2
HEARTBEAT_SECONDS = 15.0


@dataclass
class Sample:
    """The outcome for one input row."""

    status: str
    error_message: str | None = None
    image: bytes | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    exif: str | None = None
    hash: str | None = None
    nbytes: int = 0


def pool_size(cfg: Config) -> int:
    """Threads of a task's pool: thread_count downloading, PROCESSING_THREADS more for image work."""
    return cfg.thread_count + PROCESSING_THREADS


class SampleMaker:
    """URL in, Sample out: fetch, opt-out check, decode, resize, encode, hash, EXIF.

    As in img2dataset, thread_count is the number of downloads in flight: a thread holds a
    download slot only while it fetches, and the pool has a few more threads than slots,
    so a slow network always has thread_count requests open while images are processed.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.download_slots = threading.BoundedSemaphore(cfg.thread_count)
        self.fetcher = Fetcher(
            timeout=cfg.timeout,
            retries=cfg.retries,
            user_agent_token=cfg.user_agent_token,
            directives=cfg.directives,
            verify_ssl=not cfg.ignore_ssl_certificate,
        )
        self.images = ImageProcessor(cfg)

    def __call__(self, url: str | None) -> Sample:
        if url is None or not url.strip():
            return Sample("failed_to_download", "missing url")
        try:
            with self.download_slots:
                data = self.fetcher.fetch(url.strip())
        except FetchError as err:
            return Sample("failed_to_download", str(err))
        try:
            out = self.images.process(data)
        except ImageError as err:
            return Sample("failed_to_resize", str(err), nbytes=len(data))
        except Exception as err:  # a decoder bug must not end the shard: record it on the row
            return Sample("failed_to_resize", f"unexpected error: {type(err).__name__}: {err}", nbytes=len(data))
        return Sample(
            "success",
            image=out.data,
            width=out.width,
            height=out.height,
            original_width=out.original_width,
            original_height=out.original_height,
            exif=extract_exif(data) if self.cfg.extract_exif else None,
            hash=hash_bytes(data, self.cfg.compute_hash) if self.cfg.compute_hash else None,
            nbytes=len(data),
        )


def _meta(cfg: Config, extras: dict[str, Any], caption: str | None, url: str | None, key: str, s: Sample) -> dict:
    meta = dict(extras)
    if cfg.caption_col:
        meta["caption"] = caption
    meta.update(
        url=url,
        key=key,
        status=s.status,
        error_message=s.error_message,
        width=s.width,
        height=s.height,
        original_width=s.original_width,
        original_height=s.original_height,
    )
    if cfg.extract_exif:
        meta["exif"] = s.exif
    if cfg.compute_hash:
        meta[cfg.compute_hash] = s.hash
    return meta


def committed_stats(fs, root: str, name: str, shard_id: int) -> ShardStats | None:
    """The stats of a shard already committed (by an earlier attempt or run), else None."""
    found = storage.read_json_files(fs, [storage.join(root, keys.stats_name(name))])
    data = next(iter(found.values()), None)
    return ShardStats.from_json(shard_id, data) if isinstance(data, dict) else None


class _Heartbeat:
    """The shard's entry under _running/: where it runs and how far it got, for stall reports."""

    def __init__(self, fs, root: str, name: str, total: int) -> None:
        self.fs, self.path = fs, storage.running_path(root, name)
        self.info = {"shard": name, "host": socket.gethostname(), "pid": os.getpid(), "total": total}
        self.info["started"] = time.time()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= HEARTBEAT_SECONDS:
            self.last = now
            with contextlib.suppress(Exception):  # a report, never a reason to fail the shard
                storage.write_json(self.fs, self.path, {**self.info, "done": done, "updated": time.time()})

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(self.path)


def _await(future: Future, watchdog: ShardWatchdog | None) -> Sample:
    """The future's sample, giving up if the watchdog declares the shard stalled."""
    while not future.done():
        wait([future], timeout=0.5)
        if watchdog is not None:
            watchdog.check()
    return future.result()


def run_shard(
    cfg: Config,
    shard_id: int,
    table: pa.Table,
    make_sample: Callable[[str | None], Sample],
    pool: ThreadPoolExecutor,
    on_sample: Callable[[], None] | None = None,
    watchdog: ShardWatchdog | None = None,
) -> ShardStats:
    """Download and write one shard; its files are committed, then its stats marker last.

    A shard whose marker already exists (a task retry after a lost executor, a speculative
    duplicate, a rerun) is not downloaded again: its committed stats are returned.
    """
    fs, root = storage.filesystem(cfg.output_folder, cfg.storage_options)
    name = keys.shard_name(shard_id, cfg.oom_shard_count)
    done = committed_stats(fs, root, name, shard_id)
    if done is not None:
        return done
    table = table.sort_by(INDEX_COL)
    d = cfg.oom_sample_per_shard
    indices = table.column(INDEX_COL).to_pylist()
    urls = table.column(URL_COL).to_pylist()
    captions = table.column(CAPTION_COL).to_pylist() if cfg.caption_col else [None] * len(urls)
    extra_names = cfg.additional_columns
    extra_values = [table.column(c).to_pylist() for c in extra_names]
    schema = metadata_schema(cfg, [table.schema.field(c) for c in extra_names])

    stats = ShardStats(shard_id=shard_id, start_time=time.time())
    heartbeat = _Heartbeat(fs, root, name, len(urls))
    heartbeat.update(0, force=True)
    if watchdog is not None:
        watchdog.begin(name)
    writer = None
    pending: deque[tuple[int, Future]] = deque()
    try:
        writer = WRITERS[cfg.output_format](fs, root, name, cfg, schema)
        todo = iter(range(len(urls)))
        window = max(1, pool_size(cfg) * WINDOW_PER_THREAD)

        def submit_next() -> None:
            i = next(todo, None)
            if i is not None:
                pending.append((i, pool.submit(make_sample, urls[i])))

        for _ in range(window):
            submit_next()
        while pending:
            i, future = pending[0]
            sample = _await(future, watchdog)
            pending.popleft()
            submit_next()
            key = keys.sample_key(shard_id, indices[i], d, cfg.oom_shard_count)
            extras = {c: v[i] for c, v in zip(extra_names, extra_values, strict=True)}
            meta = _meta(cfg, extras, captions[i], urls[i], key, sample)
            writer.write(key, sample.image, captions[i], meta)
            stats.record(sample.status, sample.error_message, sample.nbytes)
            if watchdog is not None:
                watchdog.beat()
            heartbeat.update(stats.count)
            if on_sample is not None:
                on_sample()
        writer.close()
        stats.end_time = time.time()
        storage.write_json(fs, storage.join(root, keys.stats_name(name)), stats.to_json())
    except BaseException as err:
        for _, future in pending:
            future.cancel()  # do not spend the pool on a shard that is being abandoned
        if writer is not None:
            writer.abort(err)
        raise
    finally:
        if watchdog is not None:
            watchdog.end()
        heartbeat.remove()
    return stats


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


def partition_worker(cfg: Config, samples_done=None, shards_done=None) -> Callable:
    """The function given to mapInArrow: one result row per shard of the partition."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import cv2

        cv2.setNumThreads(1)
        make_sample = SampleMaker(cfg)
        bump = (lambda: samples_done.add(1)) if samples_done is not None else None
        with (
            pinned_cpu(cfg.pin_cpus),
            ShardWatchdog(cfg.shard_stall_limit) as watchdog,
            ThreadPoolExecutor(max_workers=pool_size(cfg), thread_name_prefix="img2ds") as pool,
        ):
            start_threads(pool, pool_size(cfg))
            for shard_id, table in _shard_tables(batches):
                try:
                    stats = run_shard(cfg, shard_id, table, make_sample, pool, bump, watchdog)
                except MemoryError:
                    raise  # fatal: let Spark retry the task on a fresh worker
                except Exception as err:
                    detail = "".join(traceback.format_exception_only(type(err), err)).strip()
                    yield _result(shard_id, False, None, detail)
                    continue
                if shards_done is not None:
                    shards_done.add(1)
                yield _result(shard_id, True, json.dumps(stats.to_json()), None)

    return run
