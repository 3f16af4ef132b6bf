"""How far a dataset's run is, read from its files alone: for `spark-img2ds status` and the run report.

The driver writes _job.json when a run starts (its plan), each shard its heartbeat under
_running/ while it runs and its stats file when it commits, the driver _summary.json at
the end. From those, while the run goes on or after it ended, on any machine that can
read the output folder: shards done, running and failed, samples and success rate, the
rate over the last minutes, an ETA and the stragglers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.heartbeat import HEARTBEAT_SECONDS, read_heartbeats
from spark_img2ds.dataset.stats import ShardStats, committed_shards

RATE_WINDOW = 300.0  # seconds over which the recent rate is measured
STALE_AFTER = 4 * HEARTBEAT_SECONDS  # a running shard silent for longer is reported stalled
STRAGGLER_FACTOR = 2.0  # running longer than this times the median finished shard
MIN_FINISHED_FOR_MEDIAN = 3


@dataclass
class Straggler:
    shard: str
    done: int
    total: int
    running_for: float
    silent_for: float
    host: str | None
    reason: str  # "slow" (well past the median shard) or "stalled" (no heartbeat lately)


@dataclass
class Status:
    """A run's state as its files tell it."""

    state: str  # running, finished, incomplete (finished with failed shards), stopped (no sign of life), unknown
    job_id: str | None
    shards_total: int | None
    shards_done: int
    shards_running: int
    shards_failed: int
    rows_total: int | None
    samples_done: int
    successes: int
    success_rate: float | None
    recent_rate: float  # samples/s over the last RATE_WINDOW seconds
    eta_seconds: float | None
    elapsed: float | None
    stragglers: list[Straggler] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _overlap(start: float, end: float, since: float) -> float:
    return max(0.0, end - max(start, since))


def job_entry(
    job_id: str, started: float, folder: str, rows: int | None, shards_total: int, shards_to_run: int
) -> dict[str, Any]:
    """What the driver writes to _job.json when a run starts (rows None: a retry, whose total is not rows)."""
    return {
        "job_id": job_id,
        "started": started,
        "output_folder": folder,
        "rows": rows,
        "shards_total": shards_total,
        "shards_to_run": shards_to_run,
    }


def recent_rate(stats: list[ShardStats], beats: list[dict], now: float, window: float = RATE_WINDOW) -> float:
    """Samples per second over the last window, each shard's samples spread evenly over its run (pure)."""
    since = now - window
    done = 0.0
    for s in stats:
        if s.end_time > s.start_time and s.end_time > since:
            done += s.count * _overlap(s.start_time, s.end_time, since) / (s.end_time - s.start_time)
    for b in beats:
        started, updated = float(b.get("started") or 0), float(b.get("updated") or 0)
        if not b.get("committed") and updated > started and updated > since:
            done += int(b.get("done") or 0) * _overlap(started, updated, since) / (updated - started)
    return done / window


def stragglers(stats: list[ShardStats], beats: list[dict], now: float) -> list[Straggler]:
    """Running shards far slower than the median finished one, or silent for too long (pure)."""
    durations = [s.duration for s in stats if s.duration > 0]
    median = statistics.median(durations) if len(durations) >= MIN_FINISHED_FOR_MEDIAN else None
    found = []
    for b in beats:
        if b.get("committed"):
            continue
        running = now - float(b.get("started") or now)
        silent = now - float(b.get("updated") or now)
        reason = None
        if silent > STALE_AFTER:
            reason = "stalled"
        elif median is not None and running > STRAGGLER_FACTOR * median:
            reason = "slow"
        if reason:
            found.append(
                Straggler(
                    str(b.get("shard")),
                    int(b.get("done") or 0),
                    int(b.get("total") or 0),
                    round(running, 1),
                    round(silent, 1),
                    b.get("host"),
                    reason,
                )
            )
    return sorted(found, key=lambda s: -s.running_for)


def compute_status(
    job: dict | None, summary: dict | None, stats: dict[int, ShardStats], beats: list[dict], now: float
) -> Status:
    """The Status of a dataset from its job file, summary, committed stats and heartbeats (pure)."""
    finished = summary is not None and (job is None or summary.get("job_id") == job.get("job_id"))
    running = [b for b in beats if not b.get("committed")]
    live = [b for b in running if now - float(b.get("updated") or 0) <= STALE_AFTER]
    committed = list(stats.values())
    samples = sum(s.count for s in committed) + sum(int(b.get("done") or 0) for b in running)
    successes = sum(s.successes for s in committed)
    counted = sum(s.count for s in committed)
    shards_total = (summary or {}).get("shards", {}).get("total") if finished else (job or {}).get("shards_total")
    rows_total = (job or {}).get("rows") if job else ((summary or {}).get("count") if finished else None)
    failed = int((summary or {}).get("shards", {}).get("failed") or 0) if finished else 0
    if finished:
        state = "incomplete" if failed else "finished"
    elif job is None and not committed:
        state = "unknown"
    else:
        state = "running" if live or not running else "stopped"
    rate = 0.0 if finished else recent_rate(committed, beats, now)
    eta = None
    if not finished and rows_total and rate > 0:
        eta = max(0.0, (rows_total - samples) / rate)
    started = (job or {}).get("started") or (summary or {}).get("start_time")
    end = (summary or {}).get("end_time") if finished else now
    return Status(
        state=state,
        job_id=(summary or {}).get("job_id") if finished else (job or {}).get("job_id"),
        shards_total=shards_total,
        shards_done=len(committed),
        shards_running=len(running),
        shards_failed=failed,
        rows_total=rows_total,
        samples_done=samples,
        successes=successes,
        success_rate=successes / counted if counted else None,
        recent_rate=rate,
        eta_seconds=eta,
        elapsed=(end - started) if started and end else None,
        stragglers=[] if finished else stragglers(committed, beats, now),
    )


def run_files(fs, root: str) -> tuple[dict | None, dict | None]:
    """(_job.json, _summary.json) of the dataset at root; None for one it lacks."""
    found = storage.read_json_files(fs, [storage.join(root, layout.JOB_FILE), storage.join(root, layout.SUMMARY_FILE)])
    by_name = {path.rsplit("/", 1)[-1]: data for path, data in found.items() if isinstance(data, dict)}
    return by_name.get(layout.JOB_FILE), by_name.get(layout.SUMMARY_FILE)


def read_status(fs, root: str, now: float) -> Status:
    """The Status of the dataset at root, read from its files."""
    job, summary = run_files(fs, root)
    return compute_status(job, summary, committed_shards(fs, root), read_heartbeats(fs, root), now)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def format_status(status: Status, where: str) -> str:
    """The status as a few lines for a person."""
    s = status
    total = "?" if s.shards_total is None else str(s.shards_total)
    rows = "?" if s.rows_total is None else str(s.rows_total)
    rate = "n/a" if s.success_rate is None else f"{100 * s.success_rate:.1f}%"
    lines = [
        f"{where}: {s.state}" + (f" (job {s.job_id})" if s.job_id else ""),
        f"shards: {s.shards_done}/{total} done, {s.shards_running} running, {s.shards_failed} failed",
        f"samples: {s.samples_done}/{rows} done, {s.successes} success ({rate} of finished shards)",
        f"elapsed {_duration(s.elapsed)}"
        + ("" if s.state in ("finished", "incomplete") else f", {s.recent_rate:.1f} samples/s over the last "
           f"{RATE_WINDOW / 60:.0f} min, ETA {_duration(s.eta_seconds)}"),
    ]  # fmt: skip
    for g in s.stragglers[:10]:
        lines.append(
            f"  {g.reason}: shard {g.shard} {g.done}/{g.total} on {g.host}, running {_duration(g.running_for)}, "
            f"last heartbeat {g.silent_for:.0f}s ago"
        )
    return "\n".join(lines)
