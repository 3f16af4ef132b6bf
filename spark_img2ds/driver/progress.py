"""Watching a running Spark job from the driver: progress lines, and a report of running shards on a stall."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from spark_img2ds.config import Config
from spark_img2ds.dataset import layout
from spark_img2ds.dataset.heartbeat import heartbeat_progress, running_report
from spark_img2ds.secrets import redact_url

log = logging.getLogger("spark_img2ds")


def progress_line(elapsed: float, samples: int, planned: int, shards: int, planned_shards: int) -> str:
    rate = samples / max(elapsed, 1e-9)
    eta = (planned - samples) / rate if rate > 0 else float("inf")
    eta_text = f"{eta:.0f}s" if eta != float("inf") else "unknown"
    return (
        f"progress: {shards}/{planned_shards} shards, {samples}/{planned} samples, {rate:.1f} images/s, ETA {eta_text}"
    )


def watch(
    thread: threading.Thread,
    counts: Callable[[], tuple[int, int]],
    planned: int,
    planned_shards: int,
    interval: float,
    stall_after: float,
    fs,
    root: str,
) -> None:
    """Log progress every interval seconds until thread ends; list the running shards when none finished lately.

    counts() gives (samples, shards) the finished tasks reported; what running tasks wrote
    in their heartbeats is added.
    """
    started = time.time()
    last_change, last_done = started, 0
    while thread.is_alive():
        thread.join(interval)
        if not thread.is_alive():
            break
        samples, shards = counts()
        try:
            beat_samples, beat_shards = heartbeat_progress(fs, root)
        except Exception:  # progress is a report: never end a run over it
            beat_samples, beat_shards = 0, 0
        samples, shards = min(planned, samples + beat_samples), min(planned_shards, shards + beat_shards)
        log.info(progress_line(time.time() - started, samples, planned, shards, planned_shards))
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


def job_description(cfg: Config, shard_ids: list[int], attempt: int) -> str:
    """What the Spark UI shows for a download job: which shards, of which dataset, which attempt (pure)."""
    names = [layout.shard_name(s, cfg.oom_shard_count) for s in sorted(shard_ids)]
    which = names[0] if len(names) == 1 else f"{len(names)} shards {names[0]}..{names[-1]}" if names else "no shard"
    verb = "rewrite" if cfg.retry_failed_from else "download"
    again = f" (attempt {attempt + 1} of {cfg.max_shard_retry + 1})" if attempt else ""
    return f"spark_img2ds: {verb} {which} of {redact_url(cfg.output_folder)}{again}"
