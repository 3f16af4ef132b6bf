"""The run report: {output_folder}/_report.html, one self-contained page a person can open and share.

Read from the dataset's files alone (the summary, the shard stats, a sample of the shard
parquets), so `spark-img2ds report OUT` rebuilds it for any finished or running dataset.
Charts are inline SVG: no script, no stylesheet or font from the network.
"""

from __future__ import annotations

import json
import statistics
import time
from html import escape
from typing import Any

from spark_img2ds.dataset import layout, storage
from spark_img2ds.dataset.columns import STATUS, SUCCESS
from spark_img2ds.dataset.heartbeat import read_heartbeats
from spark_img2ds.dataset.stats import ShardStats, committed_shards, merge
from spark_img2ds.dataset.status import STRAGGLER_FACTOR, compute_status, format_status, run_files
from spark_img2ds.report.svg import bar_chart, horizontal_bars, line_chart

REPORT_FILE = "_report.html"
SAMPLED_SHARDS = 20  # shard parquets read for the size and aspect distributions
THROUGHPUT_BINS = 60
SIZE_BINS = (0, 128, 256, 384, 512, 768, 1024, 1536, 2048, 4096)
ASPECT_BINS = (0, 0.5, 0.67, 0.8, 0.95, 1.05, 1.25, 1.5, 2.0, 3.0)
TOP_ERRORS = 20


def throughput(stats: list[ShardStats], bins: int = THROUGHPUT_BINS) -> tuple[list[float], list[float]]:
    """(seconds since the first shard started, samples/s) per time bin; a shard's samples spread over its run."""
    spans = [(s.start_time, s.end_time, s.count) for s in stats if s.end_time > s.start_time]
    if not spans:
        return [], []
    t0, t1 = min(s[0] for s in spans), max(s[1] for s in spans)
    width = (t1 - t0) / bins
    rates = [0.0] * bins
    for start, end, count in spans:
        per_second = count / (end - start)
        first, last = int((start - t0) / width), min(bins - 1, int((end - t0) / width))
        for b in range(first, last + 1):
            lo, hi = t0 + b * width, t0 + (b + 1) * width
            rates[b] += per_second * max(0.0, min(hi, end) - max(lo, start)) / width
    return [(b + 0.5) * width for b in range(bins)], rates


def histogram(values: list[float], edges: tuple[float, ...]) -> tuple[list[str], list[int]]:
    """Counts of values in [edges[i], edges[i+1]) and a last open bin, with their labels (pure)."""
    counts = [0] * len(edges)
    for v in values:
        i = max(j for j, edge in enumerate(edges) if v >= edge) if v >= edges[0] else 0
        counts[i] += 1
    labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)] + [f"{edges[-1]:g}+"]
    return labels, counts


def _sample_sizes(fs, root: str, shard_names: list[str]) -> list[tuple[int, int]]:
    """(original width, height) of the successes of up to SAMPLED_SHARDS shards spread over the dataset."""
    import pyarrow.parquet as pq

    if not shard_names:
        return []
    step = max(1, len(shard_names) // SAMPLED_SHARDS)
    sizes = []
    for name in shard_names[::step][:SAMPLED_SHARDS]:
        path = storage.join(root, layout.metadata_name(name))
        try:
            with fs.open(path, "rb") as f:
                table = pq.read_table(f, columns=[STATUS, "original_width", "original_height"])
        except (OSError, ValueError, KeyError):  # no parquet (dummy) or another layout: no sizes
            continue
        for status, w, h in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            if status == SUCCESS and w and h:
                sizes.append((w, h))
    return sizes


def _figure(svg: str, caption: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:780px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
figure{margin:12px 0}figcaption{font-size:13px;font-weight:600;margin-bottom:4px}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto}.note{color:#666;font-size:12px}
"""


def render(root_shown: str, summary: dict | None, stats: dict[int, ShardStats], status_text: str,
           sizes: list[tuple[int, int]], oom_shard_count: int) -> str:  # fmt: skip
    """The report page (pure)."""
    committed = [stats[s] for s in sorted(stats)]
    totals = merge(committed)
    parts = [f"<h1>spark_img2ds run report: {escape(root_shown)}</h1>", f"<pre>{escape(status_text)}</pre>"]
    overview = [
        ("samples", totals["count"]),
        ("success", totals["successes"]),
        ("failed to download", totals["failed_to_download"]),
        ("failed to resize", totals["failed_to_resize"]),
        ("shards written", len(committed)),
        ("bytes downloaded", totals["bytes_downloaded"]),
    ]
    if summary:
        overview += [("duration (s)", round(summary.get("duration", 0), 1)),
                     ("images/s", round(summary.get("images_per_second", 0), 1))]  # fmt: skip
    parts += ["<h2>Overview</h2>", _table(overview, ("", "value"))]

    xs, rates = throughput(committed)
    parts.append("<h2>Throughput over time</h2>")
    if xs:
        chart = line_chart("samples per second", xs, rates, "seconds since the first shard started")
        parts.append(_figure(chart, "Samples per second, each shard's samples spread over its run"))
    else:
        parts.append("<p class=note>No finished shard yet.</p>")

    parts.append("<h2>Status and errors</h2>")
    statuses = totals["status_counts"]
    chart = horizontal_bars("samples by status", list(statuses), [float(v) for v in statuses.values()])
    parts.append(_figure(chart, "Samples by status"))
    errors = list(totals["error_counts"].items())[:TOP_ERRORS]
    if errors:
        chart = horizontal_bars("most frequent errors", [e for e, _ in errors], [float(n) for _, n in errors])
        parts.append(_figure(chart, f"The {len(errors)} most frequent errors"))

    parts.append("<h2>Image sizes</h2>")
    if sizes:
        note = f"Original sizes of {len(sizes)} successful samples, from up to {SAMPLED_SHARDS} shards."
        labels, counts = histogram([float(max(w, h)) for w, h in sizes], SIZE_BINS)
        chart = bar_chart("longer side, pixels", labels, [float(c) for c in counts])
        parts += [f"<p class=note>{note}</p>", _figure(chart, "Longer side of the original image, pixels")]
        labels, counts = histogram([w / h for w, h in sizes], ASPECT_BINS)
        chart = bar_chart("aspect ratio (width / height)", labels, [float(c) for c in counts])
        parts.append(_figure(chart, "Aspect ratio of the original image (width / height)"))
    else:
        parts.append("<p class=note>No sizes: no successful sample in the shard parquets read.</p>")
    shapes = sorted(totals["shape_distribution"].items(), key=lambda kv: -kv[1])[:10]
    if shapes:
        parts.append(_table(shapes, ("stored shape", "samples")))

    parts.append("<h2>Shards</h2>")
    durations = [s.duration for s in committed]
    if durations:
        median = statistics.median(durations)
        slow = {i for i, d in enumerate(durations) if d > STRAGGLER_FACTOR * median}
        names = [layout.shard_name(s.shard_id, oom_shard_count) for s in committed]
        chart = bar_chart("shard durations, seconds", names, durations, slow)
        parts.append(_figure(chart, "Shard durations in seconds; stragglers (over twice the median) in orange"))
        slowest = sorted(committed, key=lambda s: -s.duration)[:10]
        rows = [(layout.shard_name(s.shard_id, oom_shard_count), round(s.duration, 1), s.count, s.successes,
                 "straggler" if s.duration > STRAGGLER_FACTOR * median else "") for s in slowest]  # fmt: skip
        parts.append(f"<p class=note>Median shard: {median:.1f} s.</p>")
        parts.append(_table(rows, ("slowest shards", "seconds", "samples", "success", "")))

    if summary and summary.get("config"):
        parts += ["<h2>Config</h2>", f"<pre>{escape(json.dumps(summary['config'], indent=2, default=str))}</pre>"]
        parts.append(f"<p class=note>versions: {escape(json.dumps(summary.get('versions', {})))}</p>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>spark_img2ds report: {escape(root_shown)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def write_report(fs, root: str, shown: str, stats: dict[int, ShardStats] | None = None) -> str:
    """Build the report of the dataset at root and write it there; returns its path.

    stats: the shards' stats when the caller has them (the driver at the end of a run), else read from their files.
    """
    job, summary = run_files(fs, root)
    oom = int(((summary or {}).get("config") or {}).get("oom_shard_count") or 5)
    stats = committed_shards(fs, root) if stats is None else stats
    names = [layout.shard_name(s, oom) for s in sorted(stats)]
    status = format_status(compute_status(job, summary, stats, read_heartbeats(fs, root), time.time()), shown)
    page = render(shown, summary, stats, status, _sample_sizes(fs, root, names), oom)
    path = storage.join(root, REPORT_FILE)
    storage.write_committed(fs, path, page.encode("utf-8"))
    return path
