"""retry_failed_from: the options of a retry and the rows it downloads again.

A retry rewrites shards of a finished dataset in place, so the dataset's contract (its
format, image options, columns, shard size) comes from the options recorded in its
_summary.json; this run's own options may change how it downloads (timeouts, retries,
threads, the network policy), not what it writes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from spark_img2ds.config import Config
from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.columns import CAPTION, INDEX_COL, SHARD_COL, SUCCESS, URL
from spark_img2ds.dataset.stats import OTHER_ERRORS, ShardStats, committed_shards, wants_retry
from spark_img2ds.errors import ConfigError
from spark_img2ds.imaging.options import IMAGE_OPTION_NAMES
from spark_img2ds.secrets import redact_url

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("spark_img2ds")

# What a dataset's files depend on: a retry writes with the dataset's recorded values.
DATASET_OPTIONS = (
    *IMAGE_OPTION_NAMES,
    "output_format",
    "channel_mode",
    "normalize_mode",
    "dtype",
    "flatten",
    "frame",
    "npz_compressed",
    "number_sample_per_shard",
    "oom_shard_count",
    "extract_exif",
    "compute_hash",
    "caption_col",
    "save_additional_columns",
    "label_col",
    "split_col",
    "bbox_col",
    "verify_hash",
    "metadata",
)
# Recorded but never reused: the input (a retry reads the dataset), where this run runs, and
# the values a summary shows redacted.
NOT_REUSED = (
    "url_list",
    "input_format",
    "url_col",
    "output_folder",
    "storage_options",
    "proxy",
    "master",
    "processes_count",
    "incremental_mode",
    "retry_failed_from",
    "retry_errors",
)


def retry_config(cfg: Config, recorded: dict[str, Any]) -> Config:
    """The Config of a retry: the dataset's recorded options, then this run's changed ones (pure).

    ConfigError if this run asks for a dataset option other than the recorded one, or writes elsewhere.
    """
    source = cfg.retry_failed_from
    if cfg.output_folder not in (Config.output_folder, source):
        raise ConfigError(
            f"retry_failed_from rewrites {redact_url(source)!r} in place: leave output_folder out or give the same"
        )
    known = {f.name for f in dataclasses.fields(Config)}
    base = {k: v for k, v in recorded.items() if k in known and k not in NOT_REUSED}
    try:
        dataset = Config.from_dict({**base, "retry_failed_from": source})
    except ConfigError as err:
        raise ConfigError(f"the options recorded in {redact_url(source)}'s {layout.SUMMARY_FILE}: {err}") from None
    if dataset.output_format == "dummy":
        raise ConfigError(f"retry_failed_from: {redact_url(source)} is a dummy dataset, with no shard parquets to read")
    defaults = Config(url_list="-")
    changed = {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(Config)
        if f.name not in ("url_list", "output_folder") and getattr(cfg, f.name) != getattr(defaults, f.name)
    }
    clash = [k for k in DATASET_OPTIONS if k in changed and changed[k] != getattr(dataset, k)]
    if clash:
        shown = ", ".join(f"{k}={getattr(dataset, k)!r}" for k in clash)
        raise ConfigError(
            f"{redact_url(source)} was written with {shown}; a retry writes its shards the same way: "
            "leave these options out"
        )
    reused = {k: v for k, v in changed.items() if k not in DATASET_OPTIONS}
    return dataclasses.replace(dataset, output_folder=source, **reused)


def read_summary(fs, root: str, source: str) -> dict[str, Any]:
    """A finished dataset's _summary.json, with the options it records (ConfigError if it has none)."""
    path = storage.join(root, layout.SUMMARY_FILE)
    found = storage.read_json_files(fs, [path])
    summary = next(iter(found.values()), None)
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise ConfigError(
            f"retry_failed_from: {redact_url(source)} has no {layout.SUMMARY_FILE}, which a run writes when it ends; "
            "finish the run first (run it again: finished shards are kept)"
        )
    return summary


def shards_to_retry(done: dict[int, ShardStats], patterns: list[str] | None) -> list[int]:
    """Shards whose stats count a failure that the patterns select (pure; no parquet is read for the others).

    The stats count failures by message (or status); folded messages (OTHER_ERRORS) could be any.
    """
    wanted = []
    for shard_id, stats in sorted(done.items()):
        if stats.successes >= stats.count:
            continue
        messages = [m for m in stats.status_dict if m != SUCCESS]
        if OTHER_ERRORS in messages or any(wants_retry(None, m, patterns) for m in messages):
            wanted.append(shard_id)
    return wanted


def failed_rows(spark: SparkSession, cfg: Config, fs, root: str, shard_ids: list[int]) -> DataFrame:
    """The rows to download again, with their shard and index, read from the shard parquets by Spark tasks."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    from spark_img2ds.worker.failed import failed_rows as read_failed

    columns = [URL, *([CAPTION] if cfg.caption_col else []), *cfg.additional_columns]
    first = storage.join(root, layout.metadata_name(layout.shard_name(shard_ids[0], cfg.oom_shard_count)))
    with fs.open(first, "rb") as f:
        found = pq.read_schema(f)
    missing = [c for c in columns if c not in found.names]
    if missing:
        raise ConfigError(f"the shard parquets of {redact_url(cfg.output_folder)} lack column(s) {', '.join(missing)}")
    source = pa.schema(
        [found.field(c) for c in columns] + [pa.field(SHARD_COL, pa.int64()), pa.field(INDEX_COL, pa.int64())]
    )
    spark_schema = from_arrow_schema(source)
    reader = read_failed(
        shard_ids,
        cfg.output_folder,
        cfg.storage_options,
        cfg.oom_shard_count,
        columns,
        cfg.retry_errors,
        to_arrow_schema(spark_schema),
    )
    slices = max(1, min(len(shard_ids), spark.sparkContext.defaultParallelism))
    return spark.range(0, len(shard_ids), 1, slices).mapInArrow(reader, spark_schema)


def plan(
    spark: SparkSession, cfg: Config, fs, root: str, recorded_shards: int
) -> tuple[DataFrame | None, int, list[int], dict[int, ShardStats], int]:
    """(rows to download again, their count, shards to rewrite, committed shards, shards in the dataset)."""
    from pyspark.sql import functions as F

    done = committed_shards(fs, root)
    shards_total = max([recorded_shards, *(s + 1 for s in done)])
    if len(done) < shards_total:
        log.warning(
            "%d of %d shard(s) were never written; a retry only repairs written ones: run the original input "
            "again to write them",
            shards_total - len(done),
            shards_total,
        )
    candidates = shards_to_retry(done, cfg.retry_errors)
    if not candidates:
        return None, 0, [], done, shards_total
    rows = failed_rows(spark, cfg, fs, root, candidates)
    found = rows.groupBy(SHARD_COL).agg(F.count("*").alias("n")).collect()
    counts = {int(r[SHARD_COL]): int(r["n"]) for r in found}
    return rows, sum(counts.values()), sorted(counts), done, shards_total
