"""The job: plan shards, run them in Spark, retry failures, write the summary."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from spark_img2ds.config import Config
from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.heartbeat import HEARTBEAT_SECONDS
from spark_img2ds.dataset.stats import ShardStats, committed_shards
from spark_img2ds.dataset.status import job_entry
from spark_img2ds.driver import reader, retry
from spark_img2ds.driver.extend import plan_extend
from spark_img2ds.driver.progress import job_description, watch
from spark_img2ds.driver.session import get_session
from spark_img2ds.driver.summary import Summary, summarize, summary_json
from spark_img2ds.errors import ConfigError, Img2dsError, InputError
from spark_img2ds.secrets import redact_url
from spark_img2ds.tuning.warmup import preload_driver_modules, warm_python_workers

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("spark_img2ds")
# Imported by the preload thread while the JVM starts, not with this module: they load
# OpenCV, pyarrow and numpy, which would delay the JVM's launch by about 0.25 s.
RUN_MODULES = ("spark_img2ds.driver.sharding", "spark_img2ds.worker.task")
# What the download tasks import, imported by the warm-up in each Python worker.
WORKER_MODULES = ("spark_img2ds.worker.task",)
PYTHON_KILL_GRACE = 3.0  # spark.python.task.killTimeout (2s by default), and a margin
WARM_UP_WAIT = 30.0  # seconds a retry waits for the warm-up before its first Python job


def _setup_logging(verbose: bool) -> None:
    """Progress is INFO, each shard's outcome DEBUG: show them unless the application configured our logger."""
    if verbose:
        log.setLevel(logging.DEBUG)
    elif log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)


def _run_spark_job(
    spark: SparkSession,
    keyed: DataFrame,
    cfg: Config,
    shard_ids: list[int],
    planned: int,
    fs,
    root: str,
    group: str,
    run: dict | None = None,
    attempt: int = 0,
):
    """One Spark job over the given shards; returns its result rows (or raises the Spark error)."""
    from spark_img2ds.driver import sharding
    from spark_img2ds.worker.task import RESULT_DDL, partition_worker

    sc = spark.sparkContext
    samples_done = sc.accumulator(0)
    shards_done = sc.accumulator(0)
    worker_cfg = dataclasses.replace(cfg, pin_cpus=cfg.pins_cpus(sc.master))
    if not (cfg.url_list is None or isinstance(cfg.url_list, str)):
        worker_cfg = dataclasses.replace(worker_cfg, url_list="<DataFrame>")
    per_task = sharding.shards_per_task(cfg.shards_per_task, len(shard_ids), sc.master, sc.defaultParallelism)
    # Accumulators reach the driver when a task ends; until then running shards report progress in heartbeats,
    # as often as the progress lines locally, every HEARTBEAT_SECONDS on a cluster (a write per running shard).
    local = sc.master.startswith("local")
    heartbeat_every = min(HEARTBEAT_SECONDS, cfg.progress_interval) if local else HEARTBEAT_SECONDS
    out = sharding.shards_to_run(keyed, shard_ids, per_task=per_task).mapInArrow(
        partition_worker(worker_cfg, samples_done, shards_done, heartbeat_every, run_tag=group, run_info=run),
        RESULT_DDL,
    )
    box: dict[str, Any] = {}
    description = job_description(cfg, shard_ids, attempt)

    def collect() -> None:
        try:
            sc.setJobGroup(group, description)  # thread-local: this thread's jobs only
            box["rows"] = out.collect()
        except BaseException as err:  # re-raised in the driver thread below
            box["error"] = err

    thread = threading.Thread(target=collect, name="img2ds-collect", daemon=True)
    thread.start()
    watch(
        thread,
        lambda: (samples_done.value, shards_done.value),
        planned,
        len(shard_ids),
        cfg.progress_interval,
        max(cfg.shard_stall_limit, 3 * cfg.progress_interval),
        fs,
        root,
    )
    if "error" in box:
        raise box["error"]
    return box["rows"]


@dataclasses.dataclass
class _Plan:
    """What a run downloads: rows with shard ids, the shards to run, the shards it finds done."""

    rows: DataFrame | None  # None: nothing to run
    total_rows: int
    todo: list[int]
    previous: dict[int, ShardStats]
    shards_total: int


def _open_output(cfg: Config, folder: str, option: str):
    try:
        fs, root = storage.filesystem(folder, cfg.storage_options)
    except (ValueError, ImportError) as err:
        raise ConfigError(f"{option} {redact_url(folder)!r} cannot be opened: {err}") from None
    storage.check_writable(fs, root, redact_url(folder))
    return fs, root


def _report(fs, root: str, cfg: Config, stats: dict[int, ShardStats]) -> None:
    """Write _report.html from the run's shard stats; a report never fails a run."""
    from spark_img2ds.report.build import write_report

    try:
        path = write_report(fs, root, redact_url(cfg.output_folder), stats)
    except Exception as err:  # noqa: BLE001
        log.warning("could not write the run report: %s", err)
        return
    log.info("report: %s", path)


def run(cfg: Config, spark: SparkSession | None = None) -> Summary:
    """Run a download described by cfg."""
    _setup_logging(cfg.verbose)
    reader.check_input(cfg)
    started = time.time()
    job_id = uuid.uuid4().hex
    recorded_shards = 0
    if cfg.retry_failed_from is not None:
        fs, root = _open_output(cfg, cfg.retry_failed_from, "retry_failed_from")
        found = retry.read_summary(fs, root, cfg.retry_failed_from)
        cfg = retry.retry_config(cfg, found["config"])
        recorded_shards = int((found.get("shards") or {}).get("total") or 0)
    else:
        fs, root = _open_output(cfg, cfg.output_folder, "output_folder")
    if cfg.distributor != "pyspark" or cfg.subjob_size != 1000:
        log.warning("distributor and subjob_size have no effect: Spark distributes and shards the work")

    preload = preload_driver_modules(RUN_MODULES)
    try:
        spark = get_session(cfg, spark)
    finally:
        preload.release()
    warm_up = warm_python_workers(spark, WORKER_MODULES)
    log.info("options (defaults left out; secrets shown as ***): %s", json.dumps(cfg.changed_options(), default=str))
    from spark_img2ds.driver import sharding  # the preload's, or waits for it

    with sharding.pinned_split_conf(spark):
        if cfg.retry_failed_from is not None:
            # Its first job runs Python (reading the parquets): in workers the warm-up started, not in more.
            warm_up.join(WARM_UP_WAIT)
            plan = _Plan(*retry.plan(spark, cfg, fs, root, recorded_shards))
            log.info(
                "job %s: %d failed row(s) to download again, in %d of the %d shard(s) of %s",
                job_id,
                plan.total_rows,
                len(plan.todo),
                plan.shards_total,
                redact_url(cfg.output_folder),
            )
        else:
            plan = _plan_download(spark, cfg, fs, root, sharding)
            log.info(
                "job %s: %d rows in %d shards; %d already done, %d to download",
                job_id,
                plan.total_rows,
                plan.shards_total,
                len(plan.previous),
                len(plan.todo),
            )
        rows = None if cfg.retry_failed_from else plan.total_rows
        entry = job_entry(job_id, started, redact_url(cfg.output_folder), rows, plan.shards_total, len(plan.todo))
        storage.write_json(fs, storage.join(root, layout.JOB_FILE), entry)
        if plan.todo and not cfg.retry_failed_from and fs.exists(storage.join(root, layout.SUCCESS_FILE)):
            fs.rm(storage.join(root, layout.SUCCESS_FILE))
        _cleanup(fs, root, "an earlier run")
        run_info = {"job_id": job_id, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
        written, errors = _run_with_retries(spark, plan.rows, cfg, fs, root, plan.todo, plan.total_rows, run_info)
        _wait_for_killed_attempts(spark, job_id)
        _cleanup(fs, root, "failed or duplicate attempts of this run")
        warm_up.finish()

    failed = sorted(set(plan.todo) - set(written))
    previous, retried = plan.previous, None
    if cfg.retry_failed_from is not None:
        # Shards that gained nothing came back unchanged: they count as found, not written.
        written = {s: st for s, st in written.items() if st.successes > previous[s].successes}
        retried = (plan.total_rows, sum(st.successes - previous[s].successes for s, st in written.items()))
        previous = {s: st for s, st in previous.items() if s not in written}
        missing = [s for s in range(plan.shards_total) if s not in previous and s not in written]
        failed = sorted({*failed, *missing})
    summary = summarize(
        cfg, job_id, plan.shards_total, previous, written, failed, time.time() - started, retried, spark
    )
    shards = {**previous, **written}
    storage.write_json(fs, storage.join(root, layout.SUMMARY_FILE), summary_json(summary, cfg, shards, errors, started))
    _report(fs, root, cfg, shards)
    if retried is not None:
        log.info("retry: %d of %d rows recovered, %d shard(s) rewritten", retried[1], retried[0], len(written))
    if failed:
        log.error("%d shard(s) failed after %d retries: %s", len(failed), cfg.max_shard_retry, failed[:20])
    elif retried is None:
        storage.write_committed(fs, storage.join(root, layout.SUCCESS_FILE), b"")
    log.info(
        "done: %d samples (%d success) in %d shards, %d failed shards, %.1fs",
        summary.count,
        summary.successes,
        plan.shards_total,
        len(failed),
        summary.duration,
    )
    return summary


def _plan_download(spark: SparkSession, cfg: Config, fs, root: str, sharding) -> _Plan:
    """Read and number the input; find which of its shards are done (and where they start, in extend mode)."""
    keyed = _read_and_number(spark, cfg, sharding)
    # Only now that the input is known to be readable is the output touched.
    if cfg.incremental_mode == "overwrite" and fs.exists(root):
        log.info("overwrite mode: removing %s", redact_url(cfg.output_folder))
        fs.rm(root, recursive=True)
    fs.makedirs(root, exist_ok=True)
    new_shards = layout.shard_count(keyed.total_rows, cfg.number_sample_per_shard)
    done = committed_shards(fs, root)
    first = 0
    if cfg.incremental_mode == "extend":
        first = _extend(fs, root, cfg, keyed.total_rows, new_shards, set(done))
        keyed = sharding.offset_shards(keyed, first)
    mine = range(first, first + new_shards)
    # extend: the summary covers the shards already there too; otherwise only this input's
    previous = {s: st for s, st in done.items() if s in mine or cfg.incremental_mode == "extend"}
    todo = [s for s in mine if s not in previous]
    n_shards = max([first + new_shards, *(s + 1 for s in previous)])
    return _Plan(keyed.df, keyed.total_rows, todo, previous, n_shards)


def _extend(fs, root: str, cfg: Config, rows: int, new_shards: int, done: set[int]) -> int:
    """The first shard id of this input in extend mode, recorded in _extends.json before anything is written.

    The same input (url_list and row count) finds its earlier entry, so a crashed extend resumes
    where it stopped instead of appending again.
    """
    path = storage.join(root, layout.EXTENDS_FILE)
    entries = storage.read_json_files(fs, [path]).get(path.split("://", 1)[-1], [])
    source = redact_url(cfg.url_list) if isinstance(cfg.url_list, str) else None
    first, entries = plan_extend(entries, done, source, rows, new_shards)
    storage.write_json(fs, path, entries)
    log.info("extend mode: %d new shard(s) from shard %d on", new_shards, first)
    return first


def _read_and_number(spark: SparkSession, cfg: Config, sharding):
    """The input with shard ids; one InputError for whatever makes it unreadable, or empty."""
    source = redact_url(cfg.url_list) if isinstance(cfg.url_list, str) else "the DataFrame"
    try:
        if isinstance(cfg.url_list, str):
            df = reader.read_input(spark, cfg)
        else:
            df = reader.from_dataframe(_materialize(cfg.url_list), cfg)
        keyed = sharding.assign_shards(df, cfg.number_sample_per_shard)
    except Img2dsError:
        raise
    except Exception as err:  # Spark's parse and I/O errors surface here, wrapped by Py4J
        raise InputError(
            f"could not read url_list {source!r} as {cfg.input_format}: {reader.first_line(err)}"
        ) from None
    if keyed.total_rows == 0:
        raise InputError(f"url_list {source!r} has no rows: nothing to download")
    return keyed


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


def _run_with_retries(spark, keyed, cfg: Config, fs, root: str, todo: list[int], total_rows: int, run: dict):
    """Run the shards, then re-run the failed ones up to max_shard_retry times, each in a new job."""
    written: dict[int, ShardStats] = {}
    errors: dict[int, str] = {}
    remaining = list(todo)
    for attempt in range(cfg.max_shard_retry + 1):
        if not remaining:
            break
        if attempt:
            log.info("running %d failed shard(s) again in a new Spark job", len(remaining))
        planned = min(total_rows, len(remaining) * cfg.number_sample_per_shard)
        try:
            rows = _run_spark_job(spark, keyed, cfg, remaining, planned, fs, root, run["job_id"], run, attempt)
        except Img2dsError:
            raise
        except Exception as err:  # the Spark job aborted: keep what its shards committed
            log.error(
                "Spark job failed: %s", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            )
            rows = []
            committed = committed_shards(fs, root)
            for s in remaining:
                if s in committed:
                    written[s] = committed[s]
                else:
                    errors[s] = "Spark job failed before this shard finished"
        for row in rows:
            shard = row["shard_id"]
            if row["ok"]:
                written[shard] = stats = ShardStats.from_json(shard, json.loads(row["stats"]))
                errors.pop(shard, None)
                log.debug(
                    "shard %s: %d of %d samples succeeded in %.1fs",
                    layout.shard_name(shard, cfg.oom_shard_count),
                    stats.successes,
                    stats.count,
                    stats.duration,
                )
            else:
                errors[shard] = row["error"]
        remaining = [s for s in remaining if s not in written]
        for s in remaining:  # one line per shard and attempt, with its reason
            log.warning(
                "shard %s failed (attempt %d of %d), %s: %s",
                layout.shard_name(s, cfg.oom_shard_count),
                attempt + 1,
                cfg.max_shard_retry + 1,
                "giving up" if attempt == cfg.max_shard_retry else "will retry",
                errors.get(s, "no result"),
            )
    return written, errors
