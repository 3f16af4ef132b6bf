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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from spark_img2ds import keys, storage
from spark_img2ds.affinity import pinned_cpu
from spark_img2ds.allocator import cap_malloc_arenas
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
    """The shard's entry under _running/: where it runs and how far it got, for progress and stall reports.

    A committed shard's entry stays, marked committed, until its task ends: the driver
    counts it until the task's accumulators, sent when the task ends, take over.
    """

    def __init__(self, fs, root: str, name: str, total: int, every: float = HEARTBEAT_SECONDS) -> None:
        self.fs, self.path, self.every = fs, storage.running_path(root, name), every
        self.info = {"shard": name, "host": socket.gethostname(), "pid": os.getpid(), "total": total}
        self.info["started"] = time.time()
        self.last = 0.0

    def update(self, done: int, force: bool = False, committed: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            info = {**self.info, "done": done, "updated": time.time(), "committed": committed}
            with contextlib.suppress(Exception):  # a report, never a reason to fail the shard
                storage.write_json(self.fs, self.path, info)

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(self.path)


def _await(future: Future, watchdog: ShardWatchdog | None) -> Sample:
    """The future's sample, giving up if the watchdog declares the shard stalled."""
    while True:
        try:
            return future.result(timeout=0.5)
        except FutureTimeout:
            if watchdog is not None:
                watchdog.check()


class _OpenShard:
    """One shard being downloaded: its rows, its writer, its stats and its heartbeat."""

    def __init__(
        self, cfg: Config, fs, root: str, shard_id: int, table: pa.Table, heartbeat_every: float = HEARTBEAT_SECONDS
    ) -> None:
        self.cfg, self.shard_id = cfg, shard_id
        self.name = keys.shard_name(shard_id, cfg.oom_shard_count)
        table = table.sort_by(INDEX_COL)
        self.indices = table.column(INDEX_COL).to_pylist()
        self.urls = table.column(URL_COL).to_pylist()
        self.rows = len(self.urls)
        self.captions = table.column(CAPTION_COL).to_pylist() if cfg.caption_col else [None] * self.rows
        self.extra_names = cfg.additional_columns
        self.extra_values = [table.column(c).to_pylist() for c in self.extra_names]
        self.schema = metadata_schema(cfg, [table.schema.field(c) for c in self.extra_names])
        self.fs, self.root = fs, root
        self.stats = ShardStats(shard_id=shard_id, start_time=time.time())
        self.heartbeat = _Heartbeat(fs, root, self.name, self.rows, heartbeat_every)
        self.submitted = 0  # rows handed to the pool
        self.writer = None

    def open(self) -> None:
        self.heartbeat.update(0, force=True)
        self.writer = WRITERS[self.cfg.output_format](self.fs, self.root, self.name, self.cfg, self.schema)

    def write(self, i: int, sample: Sample) -> bool:
        """Store row i's outcome (rows come in index order); True once every row is stored."""
        cfg = self.cfg
        key = keys.sample_key(self.shard_id, self.indices[i], cfg.oom_sample_per_shard, cfg.oom_shard_count)
        extras = {c: v[i] for c, v in zip(self.extra_names, self.extra_values, strict=True)}
        meta = _meta(cfg, extras, self.captions[i], self.urls[i], key, sample)
        self.writer.write(key, sample.image, self.captions[i], meta)
        self.stats.record(sample.status, sample.error_message, sample.nbytes)
        self.heartbeat.update(self.stats.count)
        return self.stats.count == self.rows

    def commit(self) -> ShardStats:
        """Publish the shard's files, then its stats marker last."""
        self.writer.close()
        self.stats.end_time = time.time()
        storage.write_json(self.fs, storage.join(self.root, keys.stats_name(self.name)), self.stats.to_json())
        self.heartbeat.update(self.rows, force=True, committed=True)
        return self.stats

    def abort(self, err: BaseException) -> None:
        """Discard this attempt's files."""
        if self.writer is not None:
            self.writer.abort(err)
        self.heartbeat.remove()


ShardOutcome = tuple[int, "ShardStats | Exception"]


def run_shards(
    cfg: Config,
    tables: Iterable[tuple[int, pa.Table]],
    make_sample: Callable[[str | None], Sample],
    pool: ThreadPoolExecutor,
    on_sample: Callable[[], None] | None = None,
    watchdog: ShardWatchdog | None = None,
    heartbeat_every: float = HEARTBEAT_SECONDS,
) -> Iterator[ShardOutcome]:
    """Download and write shards one after another through one window of requests.

    The next shard's downloads start while the current one's last samples are still in
    flight, so a boundary between shards leaves no slot idle. Each shard is written in
    index order and committed on its own: files first, its stats marker last. A shard
    whose marker already exists (a task retry after a lost executor, a speculative
    duplicate, a rerun) is not downloaded again: its committed stats are reported.
    A shard that fails (storage error, stall) is abandoned alone, with its files
    discarded, and reported with its error; the others go on. Heartbeats are written
    every heartbeat_every seconds; those of committed shards are removed at the end.
    """
    fs, root = storage.filesystem(cfg.output_folder, cfg.storage_options)
    upcoming = iter(tables)
    window = max(1, pool_size(cfg) * WINDOW_PER_THREAD)
    pending: deque[tuple[_OpenShard, int, Future]] = deque()
    ready: deque[ShardOutcome] = deque()  # outcomes known before the shard reaches the head
    feeding: _OpenShard | None = None
    exhausted = False
    head: _OpenShard | None = None
    committed: list[_OpenShard] = []

    def next_table() -> tuple[int, pa.Table] | None:
        if watchdog is None:
            return next(upcoming, None)
        with watchdog.paused():
            return next(upcoming, None)

    def next_shard() -> _OpenShard | None:
        nonlocal exhausted
        while (item := next_table()) is not None:
            shard_id, table = item
            try:
                shard = _OpenShard(cfg, fs, root, shard_id, table, heartbeat_every)
                done = committed_stats(fs, root, shard.name, shard_id)
                if done is not None:
                    ready.append((shard_id, done))
                    continue
                shard.open()
            except MemoryError:
                raise
            except Exception as err:
                ready.append((shard_id, err))
                continue
            return shard
        exhausted = True
        return None

    def fill() -> None:
        nonlocal feeding
        while len(pending) < window:
            if feeding is None or feeding.submitted == feeding.rows:
                feeding = None if exhausted else next_shard()
                if feeding is None:
                    return
            i = feeding.submitted
            feeding.submitted += 1
            pending.append((feeding, i, pool.submit(make_sample, feeding.urls[i])))

    def drop(shard: _OpenShard, err: BaseException) -> None:
        nonlocal feeding
        while pending and pending[0][0] is shard:
            pending.popleft()[2].cancel()  # do not spend the pool on a shard that is being abandoned
        if feeding is shard:
            feeding = None
        shard.abort(err)

    try:
        fill()
        while pending or ready:
            while ready:
                yield ready.popleft()
            if not pending:
                fill()
                continue
            shard, i, future = pending[0]
            if shard is not head:
                head = shard
                if watchdog is not None:
                    watchdog.begin(shard.name)
            try:
                sample = _await(future, watchdog)
                pending.popleft()
                complete = shard.write(i, sample)
                if complete:
                    stats = shard.commit()
                    committed.append(shard)
                if watchdog is not None:
                    watchdog.beat()
            except MemoryError:
                raise  # fatal: the task fails and Spark retries it on a fresh worker
            except Exception as err:
                drop(shard, err)
                head = None
                if watchdog is not None:
                    watchdog.end()
                yield shard.shard_id, err
                fill()
                continue
            if on_sample is not None:
                on_sample()
            fill()
            if complete:
                head = None
                if watchdog is not None:
                    watchdog.end()
                yield shard.shard_id, stats
    except BaseException as err:
        abandoned = {id(s): s for s, _, _ in pending}
        if feeding is not None:
            abandoned[id(feeding)] = feeding
        for _, _, future in pending:
            future.cancel()
        for shard in abandoned.values():
            shard.abort(err)
        raise
    finally:
        if watchdog is not None:
            watchdog.end()
        for shard in committed:
            shard.heartbeat.remove()


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
) -> Callable:
    """The function given to mapInArrow: one result row per shard of the partition.

    run_tag names the run, so that its tasks may use the CPUs that its finished tasks left idle.
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
            shards = run_shards(cfg, _shard_tables(batches), make_sample, pool, bump, watchdog, heartbeat_every)
            for shard_id, outcome in shards:
                if isinstance(outcome, Exception):
                    detail = "".join(traceback.format_exception_only(type(outcome), outcome)).strip()
                    yield _result(shard_id, False, None, detail)
                    continue
                if shards_done is not None:
                    shards_done.add(1)
                yield _result(shard_id, True, json.dumps(outcome.to_json()), None)

    return run
