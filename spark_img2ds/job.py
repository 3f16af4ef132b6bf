"""The job driver: plan shards, run them in Spark, retry failures, write the summary."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spark_img2ds import __version__, keys, reader, storage
from spark_img2ds.config import Config
from spark_img2ds.errors import ConfigError, Img2dsError
from spark_img2ds.session import get_session, preload_driver_modules, warm_python_workers
from spark_img2ds.stats import ShardStats, merge

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("spark_img2ds")
# Imported by the preload thread while the JVM starts, not with this module: they load
# OpenCV, pyarrow and numpy, which would delay the JVM's launch by about 0.25 s.
RUN_MODULES = ("spark_img2ds.sharding", "spark_img2ds.worker")
SUMMARY_FILE = "_summary.json"
SUCCESS_FILE = "_SUCCESS"
PYTHON_KILL_GRACE = 3.0  # spark.python.task.killTimeout (2s by default), and a margin


@dataclass
class Summary:
    """What a run did; also written to {output_folder}/_summary.json."""

    output_folder: str
    job_id: str
    complete: bool
    count: int = 0
    successes: int = 0
    failed_to_download: int = 0
    failed_to_resize: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    error_counts: dict[str, int] = field(default_factory=dict)
    shards_total: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    shards_failed: list[int] = field(default_factory=list)
    samples_this_run: int = 0
    duration: float = 0.0
    images_per_second: float = 0.0

    def __str__(self) -> str:
        state = "complete" if self.complete else f"INCOMPLETE ({len(self.shards_failed)} shard(s) failed)"
        lines = [
            f"dataset: {self.output_folder} ({state})",
            f"samples: {self.count} total, {self.successes} success, "
            f"{self.failed_to_download} failed to download, {self.failed_to_resize} failed to resize",
            f"shards: {self.shards_total} total, {self.shards_written} written now, {self.shards_skipped} already done",
            f"this run: {self.samples_this_run} samples in {self.duration:.1f}s "
            f"({self.images_per_second:.1f} images/s)",
        ]
        for message, n in list(self.error_counts.items())[:5]:
            lines.append(f"  {n:>8}  {message}")
        return "\n".join(lines)


def _setup_logging() -> None:
    """Progress is INFO: make it visible unless the application configured our logger."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)


def _done_shards(fs, root: str) -> dict[int, ShardStats]:
    """Shards whose stats marker exists, with their stats."""
    paths = fs.glob(storage.join(root, f"*{keys.STATS_SUFFIX}"))
    found = storage.read_json_files(fs, paths)
    done = {}
    for path, data in found.items():
        shard_id = keys.parse_shard_name(path.rsplit("/", 1)[-1])
        if shard_id is not None:
            done[shard_id] = ShardStats.from_json(shard_id, data)
    return done


def _progress(started: float, samples: int, planned: int, shards: int, planned_shards: int) -> str:
    elapsed = max(time.time() - started, 1e-9)
    rate = samples / elapsed
    eta = (planned - samples) / rate if rate > 0 else float("inf")
    eta_text = f"{eta:.0f}s" if eta != float("inf") else "unknown"
    return (
        f"progress: {shards}/{planned_shards} shards, {samples}/{planned} samples, {rate:.1f} images/s, ETA {eta_text}"
    )


def _heartbeats(fs, root: str) -> list[dict]:
    """The entries under _running/ (see worker._Heartbeat), in shard order."""
    folder = storage.join(root, storage.RUNNING_DIR)
    fs.invalidate_cache(folder)
    try:
        paths = [p for p in fs.ls(folder, detail=False) if p.endswith(".json")]
    except FileNotFoundError:
        return []
    return [info for _, info in sorted(storage.read_json_files(fs, paths).items()) if isinstance(info, dict)]


def running_report(fs, root: str, now: float) -> list[str]:
    """One line per shard with a heartbeat under _running/: progress, where, and how fresh."""
    lines = []
    for info in _heartbeats(fs, root):
        if info.get("committed"):
            continue
        quiet = now - float(info.get("updated", now))
        lines.append(
            f"shard {info.get('shard')}: {info.get('done')}/{info.get('total')} samples on "
            f"{info.get('host')} (pid {info.get('pid')}), running {now - float(info.get('started', now)):.0f}s, "
            f"last heartbeat {quiet:.0f}s ago"
        )
    return lines


def heartbeat_progress(fs, root: str) -> tuple[int, int]:
    """(samples, committed shards) that running tasks have reported in heartbeats and not yet in accumulators."""
    beats = _heartbeats(fs, root)
    return sum(int(b.get("done") or 0) for b in beats), sum(1 for b in beats if b.get("committed"))


def _run_spark_job(
    spark: SparkSession, keyed: DataFrame, cfg: Config, shard_ids: list[int], planned: int, fs, root: str, group: str
):
    """One Spark job over the given shards; returns its result rows (or raises the Spark error)."""
    from spark_img2ds import sharding
    from spark_img2ds.worker import HEARTBEAT_SECONDS, RESULT_DDL, partition_worker

    sc = spark.sparkContext
    samples_done = sc.accumulator(0)
    shards_done = sc.accumulator(0)
    worker_cfg = cfg if isinstance(cfg.url_list, str) else dataclasses.replace(cfg, url_list="<DataFrame>")
    per_task = sharding.shards_per_task(cfg.shards_per_task, len(shard_ids), sc.master, sc.defaultParallelism)
    # Accumulators reach the driver when a task ends; tasks of several shards report progress in heartbeats too.
    from_heartbeats = per_task > 1
    heartbeat_every = min(HEARTBEAT_SECONDS, cfg.progress_interval) if from_heartbeats else HEARTBEAT_SECONDS
    out = sharding.shards_to_run(keyed, shard_ids, per_task=per_task).mapInArrow(
        partition_worker(worker_cfg, samples_done, shards_done, heartbeat_every, run_tag=group), RESULT_DDL
    )
    box: dict[str, Any] = {}

    def collect() -> None:
        try:
            sc.setJobGroup(group, "spark_img2ds: download shards")  # thread-local: this thread's jobs only
            box["rows"] = out.collect()
        except BaseException as err:  # re-raised in the driver thread below
            box["error"] = err

    started = time.time()
    stall_after = max(cfg.shard_stall_limit, 3 * cfg.progress_interval)
    last_change, last_done = started, 0
    thread = threading.Thread(target=collect, name="img2ds-collect", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(cfg.progress_interval)
        if not thread.is_alive():
            break
        samples, shards = samples_done.value, shards_done.value
        if from_heartbeats:
            try:
                beat_samples, beat_shards = heartbeat_progress(fs, root)
            except Exception:  # progress is a report: never end a run over it
                beat_samples, beat_shards = 0, 0
            samples, shards = min(planned, samples + beat_samples), min(len(shard_ids), shards + beat_shards)
        log.info(_progress(started, samples, planned, shards, len(shard_ids)))
        now = time.time()
        if shards != last_done:
            last_change, last_done = now, shards
        elif now - last_change >= stall_after:
            last_change = now  # report again after another stall_after seconds
            try:
                running = running_report(fs, root, now)
            except Exception as err:  # a report must not end the run
                running = [f"(could not list running shards: {err})"]
            log.warning(
                "no shard finished in the last %.0fs; %d shard(s) running:\n  %s",
                stall_after,
                len(running),
                "\n  ".join(running) or "(none has reported yet)",
            )
    if "error" in box:
        raise box["error"]
    return box["rows"]


def run(cfg: Config, spark: SparkSession | None = None) -> Summary:
    """Run a download described by cfg."""
    _setup_logging()
    reader.check_input(cfg)
    started = time.time()
    job_id = uuid.uuid4().hex
    try:
        fs, root = storage.filesystem(cfg.output_folder, cfg.storage_options)
    except (ValueError, ImportError) as err:
        raise ConfigError(f"output_folder {cfg.output_folder!r} cannot be opened: {err}") from None
    if cfg.distributor != "pyspark" or cfg.subjob_size != 1000:
        log.warning("distributor and subjob_size have no effect: Spark distributes and shards the work")

    preload = preload_driver_modules(RUN_MODULES)
    try:
        spark = get_session(cfg, spark)
    finally:
        preload.release()
    warm_up = warm_python_workers(spark)
    from spark_img2ds import sharding  # the preload's, or waits for it

    with sharding.pinned_split_conf(spark):
        if isinstance(cfg.url_list, str):
            df = reader.read_input(spark, cfg)
        else:
            df = reader.from_dataframe(_materialize(cfg.url_list), cfg)
        keyed = sharding.assign_shards(df, cfg.number_sample_per_shard)
        # Only now that the input is known to be readable is the output touched.
        if cfg.incremental_mode == "overwrite" and fs.exists(root):
            log.info("overwrite mode: removing %s", cfg.output_folder)
            fs.rm(root, recursive=True)
        fs.makedirs(root, exist_ok=True)
        n_shards = keys.shard_count(keyed.total_rows, cfg.number_sample_per_shard)
        previous = {s: st for s, st in _done_shards(fs, root).items() if s < n_shards}
        todo = [s for s in range(n_shards) if s not in previous]
        log.info(
            "job %s: %d rows in %d shards; %d already done, %d to download",
            job_id,
            keyed.total_rows,
            n_shards,
            len(previous),
            len(todo),
        )
        if todo and fs.exists(storage.join(root, SUCCESS_FILE)):
            fs.rm(storage.join(root, SUCCESS_FILE))
        _cleanup(fs, root, "an earlier run")
        written, errors = _run_with_retries(spark, keyed.df, cfg, fs, root, todo, keyed.total_rows, job_id)
        _wait_for_killed_attempts(spark, job_id)
        _cleanup(fs, root, "failed or duplicate attempts of this run")
        warm_up.finish()

    failed = sorted(set(todo) - set(written))
    everything = {**previous, **written}
    totals = merge(everything.values())
    duration = time.time() - started
    this_run = sum(s.count for s in written.values())
    summary = Summary(
        output_folder=cfg.output_folder,
        job_id=job_id,
        complete=not failed,
        count=totals["count"],
        successes=totals["successes"],
        failed_to_download=totals["failed_to_download"],
        failed_to_resize=totals["failed_to_resize"],
        status_counts=totals["status_counts"],
        error_counts=totals["error_counts"],
        shards_total=n_shards,
        shards_written=len(written),
        shards_skipped=len(previous),
        shards_failed=failed,
        samples_this_run=this_run,
        duration=duration,
        images_per_second=this_run / duration if duration > 0 else 0.0,
    )
    storage.write_json(fs, storage.join(root, SUMMARY_FILE), _summary_json(summary, cfg, everything, errors, started))
    if not failed:
        storage.write_committed(fs, storage.join(root, SUCCESS_FILE), b"")
    else:
        log.error("%d shard(s) failed after %d retries: %s", len(failed), cfg.max_shard_retry, failed[:20])
    log.info(
        "done: %d samples (%d success) in %d shards, %d failed shards, %.1fs",
        summary.count,
        summary.successes,
        n_shards,
        len(failed),
        duration,
    )
    return summary


def _wait_for_killed_attempts(spark: SparkSession, group: str, limit: float = 60.0) -> None:
    """Let killed duplicates (speculation losers, abandoned attempts) end before cleaning up after them.

    Spark finishes a job before its killed task attempts have stopped, and a Python
    worker outlives its killed task by up to spark.python.task.killTimeout.
    """
    tracker = spark.sparkContext.statusTracker()
    end = time.monotonic() + limit
    waited = False
    while time.monotonic() < end:
        active = 0
        for job in tracker.getJobIdsForGroup(group):
            info = tracker.getJobInfo(job)
            for stage in info.stageIds if info else ():
                stage_info = tracker.getStageInfo(stage)
                active += stage_info.numActiveTasks if stage_info else 0
        if not active:
            break
        waited = True
        time.sleep(0.2)
    if waited:
        time.sleep(PYTHON_KILL_GRACE)


def _cleanup(fs, root: str, whose: str) -> None:
    """Remove temporary files and unfinished uploads left by killed attempts."""
    try:
        removed = storage.cleanup_partial(fs, root)
    except Exception as err:  # leftovers are invisible to readers; never fail a run over them
        log.warning("could not clean up partial files in %s: %s", root, err)
        return
    if removed:
        log.info("removed %d partial file(s) left by %s, e.g. %s", len(removed), whose, removed[0])


def _materialize(df: DataFrame) -> DataFrame:
    """Pin a user's DataFrame so that every job sees the same rows in the same order."""
    sc = df.sparkSession.sparkContext
    if sc.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


def _run_with_retries(spark, keyed, cfg: Config, fs, root: str, todo: list[int], total_rows: int, group: str):
    """Run the shards, then re-run the failed ones up to max_shard_retry times, each in a new job."""
    written: dict[int, ShardStats] = {}
    errors: dict[int, str] = {}
    remaining = list(todo)
    for attempt in range(cfg.max_shard_retry + 1):
        if not remaining:
            break
        if attempt:
            log.warning("retrying %d failed shard(s) (attempt %d of %d)", len(remaining), attempt, cfg.max_shard_retry)
        planned = min(total_rows, len(remaining) * cfg.number_sample_per_shard)
        try:
            rows = _run_spark_job(spark, keyed, cfg, remaining, planned, fs, root, group)
        except Img2dsError:
            raise
        except Exception as err:  # the Spark job aborted: keep what its shards committed
            log.error(
                "Spark job failed: %s", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            )
            rows = []
            committed = _done_shards(fs, root)
            for s in remaining:
                if s in committed:
                    written[s] = committed[s]
                else:
                    errors[s] = "Spark job failed before this shard finished"
        for row in rows:
            if row["ok"]:
                written[row["shard_id"]] = ShardStats.from_json(row["shard_id"], json.loads(row["stats"]))
                errors.pop(row["shard_id"], None)
            else:
                errors[row["shard_id"]] = row["error"]
                log.warning("shard %s failed: %s", row["shard_id"], row["error"])
        remaining = [s for s in remaining if s not in written]
    return written, errors


def _summary_json(summary: Summary, cfg: Config, shards: dict[int, ShardStats], errors: dict[int, str], started: float):
    import pyspark

    per_shard = []
    for shard_id in range(summary.shards_total):
        st = shards.get(shard_id)
        entry: dict[str, Any] = {"shard": keys.shard_name(shard_id, cfg.oom_shard_count)}
        if st is None:
            entry.update(state="failed", error=errors.get(shard_id, "not written"))
        else:
            entry.update(state="done", count=st.count, successes=st.successes, duration=round(st.duration, 3))
        per_shard.append(entry)
    return {
        "job_id": summary.job_id,
        "complete": summary.complete,
        "start_time": started,
        "end_time": started + summary.duration,
        "duration": summary.duration,
        "count": summary.count,
        "successes": summary.successes,
        "failed_to_download": summary.failed_to_download,
        "failed_to_resize": summary.failed_to_resize,
        "status_counts": summary.status_counts,
        "error_counts": summary.error_counts,
        "samples_this_run": summary.samples_this_run,
        "images_per_second": summary.images_per_second,
        "shards": {
            "total": summary.shards_total,
            "written_this_run": summary.shards_written,
            "already_done": summary.shards_skipped,
            "failed": len(summary.shards_failed),
        },
        "per_shard": per_shard,
        "config": cfg.to_public_dict(),
        "versions": {"spark_img2ds": __version__, "pyspark": pyspark.__version__},
    }


def download(url_list: Any, spark: SparkSession | None = None, **options: Any) -> Summary:
    """Download url_list into a dataset; options are img2dataset's download() keywords."""
    return run(Config.from_dict({"url_list": url_list, **options}), spark)
