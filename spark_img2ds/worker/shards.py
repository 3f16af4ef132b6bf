"""The shard loop: download and write whole shards through one window of requests.

It holds no state between tasks: a shard is a pure function of its input rows and
the config, so a retried or speculative task writes the same bytes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pyarrow as pa

from spark_img2ds.config import Config
from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.columns import CAPTION, INDEX_COL, SUCCESS, URL
from spark_img2ds.dataset.heartbeat import HEARTBEAT_SECONDS, Heartbeat
from spark_img2ds.dataset.stats import ShardStats
from spark_img2ds.worker.sample import Sample, pool_size
from spark_img2ds.worker.watchdog import ShardWatchdog
from spark_img2ds.writers import writer_class

WINDOW_PER_THREAD = 4  # downloads submitted and not finished, per pool thread
# Finished samples that may wait behind a slow row (a download that times out) before the
# next downloads start: writes go in index order, and a window that held only the running
# downloads would stall for the slow row's whole timeout (measured on a web-like list with 2%
# timeouts: 0.37x img2dataset's images/s). Bounded in rows and in bytes per task.
HOLD_PER_THREAD = 64
MAX_HELD_BYTES = 256 * 1024 * 1024
TICK = 0.1  # seconds between top-ups of the window while the head row is slow


def committed_stats(fs, root: str, name: str, shard_id: int) -> ShardStats | None:
    """The stats of a shard already committed (by an earlier attempt or run), else None."""
    found = storage.read_json_files(fs, [storage.join(root, layout.stats_name(name))])
    data = next(iter(found.values()), None)
    return ShardStats.from_json(shard_id, data) if isinstance(data, dict) else None


def _shape(sample: Sample) -> str | None:
    """A successful sample's shape as text: the array's (npz), else height x width x 3 of the stored image."""
    if sample.array is not None:
        return "x".join(str(n) for n in sample.array.shape)
    return f"{sample.height}x{sample.width}x3" if sample.height and sample.width else None


def _await(future: Future, watchdog: ShardWatchdog | None, on_tick: Callable[[], None] | None = None) -> Sample:
    """The future's sample, giving up if the watchdog declares the shard stalled; on_tick runs while it waits."""
    while True:
        try:
            return future.result(timeout=TICK)
        except FutureTimeout:
            if watchdog is not None:
                watchdog.check()
            if on_tick is not None:
                on_tick()


def _held_bytes(sample: Sample | None) -> int:
    """Memory a finished sample holds until it is written."""
    if sample is None:
        return 0
    if sample.array is not None:
        return int(sample.array.nbytes)
    return len(sample.image or b"")


class OpenShard:
    """One shard being downloaded: its rows, its writer, its stats and its heartbeat."""

    def __init__(
        self,
        cfg: Config,
        fs,
        root: str,
        shard_id: int,
        table: pa.Table,
        heartbeat_every: float = HEARTBEAT_SECONDS,
        run: dict | None = None,
    ) -> None:
        self.run = run
        self.cfg, self.shard_id = cfg, shard_id
        self.name = layout.shard_name(shard_id, cfg.oom_shard_count)
        table = table.sort_by(INDEX_COL)
        self.indices = table.column(INDEX_COL).to_pylist()
        self.urls = table.column(URL).to_pylist()
        self.rows = len(self.urls)
        self.captions = table.column(CAPTION).to_pylist() if cfg.caption_col else [None] * self.rows
        self.columns = cfg.metadata_columns()
        self.extra_values = [table.column(c).to_pylist() for c in self.columns.additional]
        self.schema = self.columns.schema([table.schema.field(c) for c in self.columns.additional])
        names = self.columns.additional
        self.verify_at = names.index(cfg.verify_hash[0]) if cfg.verify_hash else None
        self.bbox_at = names.index(cfg.bbox_col) if cfg.bbox_col else None
        self.label_at = names.index(cfg.label_col) if cfg.label_col in names else None
        self.split_at = names.index(cfg.split_col) if cfg.split_col in names else None
        self.fs, self.root = fs, root
        self.stats = ShardStats(shard_id=shard_id, start_time=time.time())
        self.heartbeat = Heartbeat(fs, root, self.name, self.rows, heartbeat_every)
        self.submitted = 0  # rows handed to the pool
        self.stored = 0  # rows written
        self.writer = None

    def committed(self) -> ShardStats | None:
        """The stats of this shard if an earlier attempt or run committed it: then it is not downloaded again."""
        return committed_stats(self.fs, self.root, self.name, self.shard_id)

    def download_args(self, i: int) -> tuple | None:
        """What make_sample takes for row i (None: the row is not downloaded)."""
        return self.urls[i], self.column_value(self.verify_at, i), self.column_value(self.bbox_at, i)

    def column_value(self, at: int | None, i: int) -> Any:
        """Row i's value of the additional column at that position (None: not configured)."""
        return None if at is None else self.extra_values[at][i]

    def open(self) -> None:
        self.heartbeat.update(0, force=True)
        self.writer = writer_class(self.cfg.output_format)(
            self.fs, self.root, self.name, self.cfg, self.schema, self.run
        )

    def write(self, i: int, sample: Sample) -> bool:
        """Store row i's outcome (rows come in index order); True once every row is stored."""
        cfg = self.cfg
        key = layout.sample_key(self.shard_id, self.indices[i], cfg.oom_sample_per_shard, cfg.oom_shard_count)
        self.store(i, key, sample)
        return self.advance()

    def advance(self) -> bool:
        """One more row stored; True once every row is."""
        self.stored += 1
        self.heartbeat.update(self.stored)
        return self.stored == self.rows

    def store(self, i: int, key: str, sample: Sample) -> None:
        """Write row i's outcome under key and count it."""
        extras = [values[i] for values in self.extra_values]
        meta = self.columns.row(extras, self.captions[i], self.urls[i], key, sample)
        self.writer.write(key, sample.image, self.captions[i], meta, sample)
        self.stats.record(sample.status, sample.error_message, sample.nbytes)
        self.stats.record_politeness(sample.delayed, sample.throttled_host, sample.unanswered_host)
        if sample.status == SUCCESS:
            self.stats.record_valid(
                _shape(sample),
                extras[self.label_at] if self.label_at is not None else None,
                extras[self.split_at] if self.split_at is not None else None,
                labelled=self.label_at is not None,
            )

    def commit(self) -> ShardStats:
        """Publish the shard's files, then its stats marker last."""
        self.writer.close()
        self.stats.end_time = time.time()
        storage.write_json(self.fs, storage.join(self.root, layout.stats_name(self.name)), self.stats.to_json())
        self.heartbeat.update(self.rows, force=True, committed=True)
        return self.stats

    def abort(self, err: BaseException) -> None:
        """Discard this attempt's files."""
        if self.writer is not None:
            self.writer.abort(err)
        self.heartbeat.remove()


ShardOutcome = tuple[int, "ShardStats | Exception"]
ShardFactory = Callable[..., OpenShard]  # OpenShard's arguments


def _resolved(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def run_shards(
    cfg: Config,
    tables: Iterable[tuple[int, pa.Table]],
    make_sample: Callable[[str | None], Sample],
    pool: ThreadPoolExecutor,
    on_sample: Callable[[], None] | None = None,
    watchdog: ShardWatchdog | None = None,
    heartbeat_every: float = HEARTBEAT_SECONDS,
    run: dict | None = None,
    open_shard: ShardFactory = OpenShard,
) -> Iterator[ShardOutcome]:
    """Download and write shards one after another through one window of requests.

    The next shard's downloads start while the current one's last samples are still in
    flight, so a boundary between shards leaves no slot idle. Each shard is written in
    index order and committed on its own: files first, its stats marker last. A shard
    whose marker already exists (a task retry after a lost executor, a speculative
    duplicate, a rerun) is not downloaded again: its committed stats are reported.
    open_shard makes each shard (worker/rewrite.py makes shards that rewrite a committed one).
    A shard that fails (storage error, stall) is abandoned alone, with its files
    discarded, and reported with its error; the others go on. Heartbeats are written
    every heartbeat_every seconds; those of committed shards are removed at the end.
    """
    fs, root = storage.filesystem(cfg.output_folder, cfg.storage_options)
    upcoming = iter(tables)
    window = max(1, pool_size(cfg) * WINDOW_PER_THREAD)
    hold = max(window, pool_size(cfg) * HOLD_PER_THREAD)
    load = {"running": 0, "held": 0}  # downloads not finished; bytes of finished samples not yet written
    load_lock = threading.Lock()
    pending: deque[tuple[OpenShard, int, Future]] = deque()
    ready: deque[ShardOutcome] = deque()  # outcomes known before the shard reaches the head
    feeding: OpenShard | None = None
    exhausted = False
    head: OpenShard | None = None
    committed: list[OpenShard] = []

    def next_table() -> tuple[int, pa.Table] | None:
        if watchdog is None:
            return next(upcoming, None)
        with watchdog.paused():
            return next(upcoming, None)

    def next_shard() -> OpenShard | None:
        nonlocal exhausted
        while (item := next_table()) is not None:
            shard_id, table = item
            try:
                shard = open_shard(cfg, fs, root, shard_id, table, heartbeat_every, run)
                done = shard.committed()
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

    def finished(future: Future) -> None:
        held = 0
        if not future.cancelled() and future.exception() is None:
            held = _held_bytes(future.result())
        with load_lock:
            load["running"] -= 1
            load["held"] += held

    def fill() -> None:
        """Submit rows while fewer than `window` downloads run, and while what waits behind the head fits."""
        nonlocal feeding
        while len(pending) < hold and load["running"] < window and load["held"] < MAX_HELD_BYTES:
            if feeding is None or feeding.submitted == feeding.rows:
                feeding = None if exhausted else next_shard()
                if feeding is None:
                    return
            i = feeding.submitted
            feeding.submitted += 1
            args = feeding.download_args(i)
            if args is None:
                pending.append((feeding, i, _resolved(None)))
                continue
            with load_lock:
                load["running"] += 1
            future = pool.submit(make_sample, *args)
            future.add_done_callback(finished)
            pending.append((feeding, i, future))

    def forget(future: Future) -> None:
        """A dropped row's sample will never be written: give back the room it holds (see finished)."""
        if not future.cancelled() and future.exception() is None:
            with load_lock:
                load["held"] -= _held_bytes(future.result())

    def drop(shard: OpenShard, err: BaseException) -> None:
        nonlocal feeding
        while pending and pending[0][0] is shard:
            future = pending.popleft()[2]
            if not future.cancel():  # do not spend the pool on a shard that is being abandoned
                future.add_done_callback(forget)  # run or running: its sample's bytes were, or will be, held
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
                sample = _await(future, watchdog, fill)
                pending.popleft()
                with load_lock:
                    load["held"] -= _held_bytes(sample)
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
            if on_sample is not None and sample is not None:  # None: a row kept as it was (rewrite.py)
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
