"""What a run did: the Summary returned to the caller and the _summary.json written beside the shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spark_img2ds import __version__
from spark_img2ds.config import Config
from spark_img2ds.dataset import layout
from spark_img2ds.dataset.stats import ShardStats, merge
from spark_img2ds.errors import Img2dsError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The dataset statistics merged from the shards' stats (dataset/stats.py), as _summary.json names them.
STATISTICS = ("valid", "invalid", "total", "shape_distribution", "class_counts", "split_counts", "missing_labels")


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
    requests_delayed: int = 0  # downloads that waited for their host (max_connections_per_host, cool-downs)
    hosts_throttled: int = 0  # hosts that answered 429/503 and were given a cool-down
    most_throttled_hosts: dict[str, int] = field(default_factory=dict)  # the first 20, most cool-downs first
    hosts_not_answering: int = 0  # hosts whose connections timed out (then skipped for a while)
    most_unanswered_hosts: dict[str, int] = field(default_factory=dict)  # the first 20, most rows lost first
    retried: int = 0  # retry_failed_from: rows downloaded again, and how many of them succeeded
    recovered: int = 0
    duration: float = 0.0
    images_per_second: float = 0.0
    statistics: dict[str, Any] = field(default_factory=dict)  # shapes, classes, splits, valid / invalid / total
    # What samples() reads: where the shard parquets are, and how.
    _spark: SparkSession | None = field(default=None, repr=False, compare=False)
    _folder: str | None = field(default=None, repr=False, compare=False)
    _format: str | None = field(default=None, repr=False, compare=False)
    _image_column: str | None = field(default=None, repr=False, compare=False)

    def samples(self) -> DataFrame:
        """Per-sample results as a Spark DataFrame, read from the shard parquets (one row per input row).

        Columns: the saved extra columns, caption, url, key, status, error_message, width, height,
        original_width, original_height, exif and the hash (the image bytes of the parquet format left out).
        """
        from pyspark.sql import SparkSession

        if self._format == "dummy":
            raise Img2dsError("output_format dummy keeps no per-sample results: only the stats")
        spark = self._spark or SparkSession.getActiveSession()
        if spark is None or self._folder is None:
            raise Img2dsError("samples() needs the Spark session of the run that made this summary")
        reader = spark.read.option("pathGlobFilter", f"*{layout.METADATA_SUFFIX}").option("mergeSchema", "true")
        try:
            df = reader.parquet(self._folder)
        except Exception as err:
            if self._folder.startswith("s3://") and "s3" in str(err):  # a Spark without EMRFS: Hadoop's S3A
                df = reader.parquet("s3a://" + self._folder[len("s3://") :])
            else:
                raise
        return df.drop(self._image_column) if self._image_column in df.columns else df

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
        if self.requests_delayed or self.hosts_throttled:
            lines.append(
                f"politeness: {self.requests_delayed} downloads waited for their host, "
                f"{self.hosts_throttled} host(s) throttled us (429/503)"
            )
        if self.hosts_not_answering:
            most = ", ".join(f"{host} ({n})" for host, n in list(self.most_unanswered_hosts.items())[:3])
            lines.append(
                f"not answering: {self.hosts_not_answering} host(s) whose connections timed out, then were "
                f"skipped for a while; most rows lost: {most}"
            )
        if self.retried:
            lines.append(f"retry: {self.recovered} of {self.retried} failed rows recovered")
        for message, n in list(self.error_counts.items())[:5]:
            lines.append(f"  {n:>8}  {message}")
        return "\n".join(lines)


def summarize(
    cfg: Config,
    job_id: str,
    shards_total: int,
    previous: dict[int, ShardStats],
    written: dict[int, ShardStats],
    failed: list[int],
    duration: float,
    retried: tuple[int, int] | None = None,
    spark: SparkSession | None = None,
) -> Summary:
    """The Summary of a run that found `previous` shards done and wrote `written`.

    retried: (rows downloaded again, rows recovered) of a retry_failed_from run, whose samples are those rows.
    """
    totals = merge({**previous, **written}.values())
    this_run = sum(s.count for s in written.values()) if retried is None else retried[0]
    return Summary(
        output_folder=cfg.output_folder,
        job_id=job_id,
        complete=not failed,
        count=totals["count"],
        successes=totals["successes"],
        failed_to_download=totals["failed_to_download"],
        failed_to_resize=totals["failed_to_resize"],
        status_counts=totals["status_counts"],
        error_counts=totals["error_counts"],
        shards_total=shards_total,
        shards_written=len(written),
        shards_skipped=len(previous),
        shards_failed=failed,
        samples_this_run=this_run,
        requests_delayed=totals["requests_delayed"],
        hosts_throttled=len(totals["throttled_hosts"]),
        most_throttled_hosts=dict(list(totals["throttled_hosts"].items())[:20]),
        hosts_not_answering=len(totals["unanswered_hosts"]),
        most_unanswered_hosts=dict(list(totals["unanswered_hosts"].items())[:20]),
        retried=retried[0] if retried else 0,
        recovered=retried[1] if retried else 0,
        duration=duration,
        images_per_second=this_run / duration if duration > 0 else 0.0,
        statistics={k: totals[k] for k in STATISTICS},
        _spark=spark,
        _folder=cfg.output_folder,
        _format=cfg.output_format,
        _image_column=cfg.encode_format if cfg.output_format == "parquet" else None,
    )


def summary_json(
    summary: Summary, cfg: Config, shards: dict[int, ShardStats], errors: dict[int, str], started: float
) -> dict[str, Any]:
    """The content of _summary.json: the Summary, each shard's state, the config (secrets redacted), versions."""
    import pyspark

    per_shard = []
    for shard_id in range(summary.shards_total):
        st = shards.get(shard_id)
        entry: dict[str, Any] = {"shard": layout.shard_name(shard_id, cfg.oom_shard_count)}
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
        **summary.statistics,
        "samples_this_run": summary.samples_this_run,
        "politeness": {
            "max_connections_per_host": cfg.max_connections_per_host,
            "requests_delayed": summary.requests_delayed,
            "hosts_throttled": summary.hosts_throttled,
            "most_throttled_hosts": summary.most_throttled_hosts,
            "connect_timeout": cfg.connect_timeout,
            "hosts_not_answering": summary.hosts_not_answering,
            "most_unanswered_hosts": summary.most_unanswered_hosts,
        },
        **(
            {"retry": {"retried": summary.retried, "recovered": summary.recovered, "errors": cfg.retry_errors}}
            if cfg.retry_failed_from
            else {}
        ),
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
