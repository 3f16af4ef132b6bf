"""``make bench``: spark_img2ds against img2dataset on the same machine, side by side.

Scenarios:
  cpu      the corpus from nginx on loopback: CPU is the limit. Alternating runs, several rounds.
  latency  every response held 50-300 ms by a delaying server: concurrency is the limit.
  rss      spark_img2ds at thread_count 64 with small and large shards: peak RSS of one Python worker.
  web      600 HTTPS host names, a local DNS server, 50-300 ms delays, 25% failures, in a network
           namespace of its own (bench/web.py).
Also measured: the per-image CPU cost of each stage in isolation and the compute ceiling, once at the
start and again before each CPU round (each round's runs are compared with that round's ceiling).
Figures are printed and written to bench/out/results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import corpus as corpus_mod
from bench import stages, web
from bench.procs import REGISTRY, become_subreaper, raise_interrupt
from bench.runners import JobOptions, RunResult, ensure_img2dataset, run_ours, run_theirs, venv_versions
from bench.servers import Server, ensure_nginx, start_python_server, start_static_server

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.6
TARGET_CEILING_FRACTION = 0.8


def env_default(name: str, default):
    value = os.environ.get(name)
    return type(default)(value) if value not in (None, "") else default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run_bench",
        description="Side-by-side throughput benchmark of spark_img2ds and img2dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round, 4,000 URLs, no tuning, small scenarios")
    ap.add_argument("--rounds", type=int, default=env_default("BENCH_ROUNDS", 3), help="CPU-scenario rounds")
    ap.add_argument(
        "--urls",
        type=int,
        default=env_default("BENCH_URLS", 40000),
        help="URLs per CPU-scenario run (the issue asks 20,000+; at 20,000 Spark start-up is 12%% of a run)",
    )
    ap.add_argument("--corpus-size", type=int, default=env_default("BENCH_CORPUS", 2000), help="distinct images")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed")
    ap.add_argument(
        "--make-corpus",
        default=None,
        help="corpus builder (default $BENCH_MAKE_CORPUS, else ../shared/bench/make_corpus.py)",
    )
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="processes_count for both tools")
    ap.add_argument("--shard-size", type=int, default=2500, help="number_sample_per_shard for both tools")
    ap.add_argument("--ours-threads", type=int, default=32, help="spark_img2ds thread_count")
    ap.add_argument("--theirs-threads", type=int, default=None, help="img2dataset thread_count (default: tuned)")
    ap.add_argument("--tune-threads", default="16,32,64", help="thread counts tried for img2dataset")
    ap.add_argument("--tune-urls", type=int, default=6000, help="URLs per tuning run")
    ap.add_argument("--tune-ours", action="store_true", help="also tune spark_img2ds's thread_count")
    ap.add_argument("--no-tune", action="store_true", help="no tuning: img2dataset uses --theirs-threads or 32")
    ap.add_argument(
        "--latency-urls", type=int, default=20000, help="URLs per latency-scenario run (the issue asks 20,000+ per run)"
    )
    ap.add_argument("--latency-rounds", type=int, default=2)
    ap.add_argument("--latency-threads", type=int, default=16, help="thread_count of both tools (latency)")
    ap.add_argument("--latency-min-ms", type=int, default=50)
    ap.add_argument("--latency-max-ms", type=int, default=300)
    ap.add_argument("--web-urls", type=int, default=10000, help="URLs per web-scenario run")
    ap.add_argument("--web-hosts", type=int, default=600, help="host names of the web scenario (live and dead)")
    ap.add_argument("--web-rounds", type=int, default=2)
    ap.add_argument("--web-threads", type=int, default=64, help="thread_count of both tools (web)")
    ap.add_argument("--web-min-ms", type=int, default=50, help="shortest response delay (web)")
    ap.add_argument("--web-max-ms", type=int, default=300, help="longest response delay (web)")
    ap.add_argument("--web-dns-min-ms", type=float, default=10, help="shortest DNS lookup delay (web)")
    ap.add_argument("--web-dns-max-ms", type=float, default=30, help="longest DNS lookup delay (web)")
    ap.add_argument(
        "--web-cert",
        choices=web.CERT_MODES,
        default="wildcard",
        help="the web server's certificate: one *.web.test name, or every host name (13 KB for 600 hosts)",
    )
    ap.add_argument(
        "--web-failures",
        default=web.DEFAULT_FAILURES,
        help="percent of the web URLs failing by each kind: 404, 403, nxdomain, reset, timeout",
    )
    ap.add_argument("--rss-threads", type=int, default=64)
    ap.add_argument("--rss-shard-sizes", default="2500,10000", help="shard sizes of the memory runs")
    ap.add_argument("--rss-urls", type=int, default=None, help="URLs per memory run (default: --urls)")
    ap.add_argument("--stage-sample", type=int, default=400, help="images in the per-stage measurement")
    ap.add_argument("--skip-theirs", action="store_true", help="run only spark_img2ds")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-web", action="store_true", help="skip the web scenario (HTTPS, DNS, failures)")
    ap.add_argument("--web-only", action="store_true", help="run only the web scenario")
    ap.add_argument("--skip-npz", action="store_true", help="skip spark_img2ds's npz output against its webdataset")
    ap.add_argument("--skip-fast-decode", action="store_true", help="skip spark_img2ds's default decode vs fast_decode")
    ap.add_argument("--npz-rounds", type=int, default=2, help="rounds of the npz scenario (one run per format)")
    ap.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install nginx when it is missing")
    ap.add_argument("--img2dataset-version", default="1.47.0")
    ap.add_argument(
        "--ceiling-decode",
        choices=("auto", "full", "reduced"),
        default="auto",
        help="decode mode of the acceptance ceiling; auto: the one spark_img2ds's pipeline uses",
    )
    ap.add_argument(
        "--ceiling-fetch",
        choices=("auto", "requests", "urllib3", "socket"),
        default="auto",
        help="fetch library of the ceiling; auto: the one spark_img2ds's pipeline uses",
    )
    ap.add_argument("--run-timeout", type=float, default=1800, help="seconds before a run is stopped")
    ap.add_argument("--out-dir", type=Path, default=HERE / "out")
    ap.add_argument("--results", type=Path, default=None, help="JSON file (default OUT_DIR/results.json)")
    ap.add_argument("--keep-output", action="store_true", help="keep each run's dataset (default: deleted)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the web scenario runs again with these, in its namespace
    if args.quick:
        args.rounds, args.urls, args.no_tune = 1, 4000, True
        args.latency_urls, args.latency_rounds = 1000, 1
        args.web_urls, args.web_rounds = 2000, 1
        args.rss_shard_sizes, args.stage_sample, args.npz_rounds = "1000,4000", 150, 1
    args.rss_urls = args.rss_urls or args.urls
    args.results = args.results or args.out_dir / "results.json"
    return args


# --- printing -------------------------------------------------------------------

COLUMNS = [
    ("scenario", 8),
    ("tool", 12),
    ("run", 7),
    ("threads", 7),
    ("shard", 6),
    ("ok/urls", 13),
    ("wall s", 7),
    ("images/s", 8),
    ("CPU ms/img", 10),
    ("srv ms/img", 10),
    ("other CPU%", 10),
    ("peak wkr MB", 11),
]
TOOL_NAMES = {"ours": "spark_img2ds", "theirs": "img2dataset"}


def header() -> str:
    return " | ".join(name.rjust(width) for name, width in COLUMNS)


def row(r: RunResult, cores: int) -> str:
    other = max(0.0, r.machine_busy_s - r.cpu_s - r.server_cpu_s)
    cells = [
        r.scenario,
        TOOL_NAMES[r.tool],
        r.label,
        r.threads,
        r.shard_size,
        f"{r.successes}/{r.urls}",
        f"{r.wall_s:.1f}",
        f"{r.images_per_s:.1f}",
        _fmt(r.cpu_ms_per_image),
        _fmt(1000 * r.server_cpu_s / r.successes if r.successes else None),
        f"{100 * other / (cores * r.wall_s):.0f}" if r.wall_s else "-",
        _fmt(r.peak_worker_rss_mb, 0),
    ]
    return " | ".join(str(c).rjust(width) for c, (_, width) in zip(cells, COLUMNS, strict=True))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report_run(r: RunResult, cores: int, runs: list[RunResult], expected_ok: float = 1.0) -> None:
    """Print a run's row, and what went wrong when it failed or fell short of 95% of the expected successes."""
    runs.append(r)
    print(row(r, cores), flush=True)
    if r.exit_code != 0 or r.successes < 0.95 * expected_ok * r.urls:
        problems = ", ".join(f"{k}: {v}" for k, v in r.error_counts.items()) or "no error counts"
        print(f"   ^ exit code {r.exit_code}, {r.successes}/{r.urls} successes ({problems}); log: {r.log}", flush=True)


# --- the scenarios ----------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cores = args.processes
        self.runs: list[RunResult] = []
        self.work = args.out_dir
        self.theirs_bin: Path | None = None
        self.expected_ok: dict[str, float] = {}  # share of the URLs meant to succeed, by scenario (default 1)

    def _kw(self, server: Server, urls: int) -> dict:
        return {"server": server, "urls": urls, "timeout": self.args.run_timeout, "keep_output": self.args.keep_output}

    def one(
        self,
        tool: str,
        scenario: str,
        label: str,
        url_list: Path,
        urls: int,
        opts: JobOptions,
        server: Server,
        sample_interval: float = 0.5,
    ) -> RunResult:
        name = f"{scenario}-{tool}-{label}-t{opts.threads}-s{opts.shard_size}"
        out_dir = self.work / "runs" / name
        log = self.work / "logs" / f"{name}.log"
        kw = self._kw(server, urls) | {
            "scenario": scenario,
            "label": label,
            "log_path": log,
            "sample_interval": sample_interval,
        }
        if tool == "ours":
            result = run_ours(url_list, out_dir, opts, **kw)
        else:
            assert self.theirs_bin is not None
            result = run_theirs(self.theirs_bin, url_list, out_dir, opts, **kw)
        report_run(result, self.cores, self.runs, self.expected_ok.get(scenario, 1.0))
        return result

    def tune(self, tool: str, url_list: Path, urls: int, server: Server) -> int:
        counts = [int(x) for x in self.args.tune_threads.split(",") if x.strip()]
        best, best_ips = counts[0], -1.0
        for i, threads in enumerate(counts, 1):
            opts = JobOptions(self.args.processes, threads, self.args.shard_size)
            r = self.one(tool, "tune", str(i), url_list, urls, opts, server)
            if r.images_per_s > best_ips:
                best, best_ips = threads, r.images_per_s
        print(f"bench: {TOOL_NAMES[tool]} thread_count chosen: {best} ({best_ips:.1f} images/s)", flush=True)
        return best

    def alternate(
        self,
        scenario: str,
        rounds: int,
        url_list: Path,
        urls: int,
        server: Server,
        threads: dict[str, int],
        before_round: Callable[[str], None] | None = None,
    ) -> None:
        """Rounds of one run per tool; which tool goes first alternates from round to round.

        before_round, if given, is called with the round's label at the start of each round.
        """
        for rnd in range(1, rounds + 1):
            if before_round is not None:
                before_round(str(rnd))
            order = ["theirs", "ours"] if rnd % 2 else ["ours", "theirs"]
            for tool in order:
                if tool == "theirs" and self.args.skip_theirs:
                    continue
                opts = JobOptions(self.args.processes, threads[tool], self.args.shard_size)
                self.one(tool, scenario, str(rnd), url_list, urls, opts, server)

    def variants(
        self,
        scenario: str,
        rounds: int,
        variants: dict[str, dict],
        url_list: Path,
        urls: int,
        server: Server,
        threads: int,
    ) -> None:
        """Rounds of spark_img2ds alone, one run per variant (JobOptions fields), the order reversed every round."""
        names = list(variants)
        for rnd in range(1, rounds + 1):
            for name in names if rnd % 2 else names[::-1]:
                opts = JobOptions(self.args.processes, threads, self.args.shard_size, **variants[name])
                self.one("ours", scenario, f"{name}-{rnd}", url_list, urls, opts, server)


def variant_medians(runs: list[RunResult], scenario: str, names: tuple[str, ...]) -> dict[str, float | None]:
    """Median images/s of each variant of a spark_img2ds-only scenario (runs labelled NAME-ROUND)."""
    return {
        name: median_or_none(
            [r.images_per_s for r in runs if r.scenario == scenario and r.label.startswith(name + "-")]
        )
        for name in names
    }


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def per_round_fraction(ips_by_round: dict[str, float], ceiling_by_round: dict[str, float]) -> dict:
    """images/s / that round's ceiling, per round, and their median.

    Only rounds with both a run and a positive ceiling count. Returns {"by_round": {label: fraction},
    "median": median or None}, rounded to 3 digits (the median is taken before rounding).
    """
    fractions = {
        rnd: ips_by_round[rnd] / ceiling
        for rnd, ceiling in ceiling_by_round.items()
        if rnd in ips_by_round and ceiling > 0
    }
    median = median_or_none(list(fractions.values()))
    return {
        "by_round": {rnd: round(f, 3) for rnd, f in fractions.items()},
        "median": round(median, 3) if median is not None else None,
    }


def scenario_summary(runs: list[RunResult], scenario: str) -> dict:
    """Median images/s per tool and the median of the per-round ratios ours/theirs."""
    picked = [r for r in runs if r.scenario == scenario]
    by_round: dict[str, dict[str, RunResult]] = {}
    for r in picked:
        by_round.setdefault(r.label, {})[r.tool] = r
    ratios = [
        pair["ours"].images_per_s / pair["theirs"].images_per_s
        for pair in by_round.values()
        if "ours" in pair and "theirs" in pair and pair["theirs"].images_per_s > 0
    ]
    out: dict = {"rounds": len(by_round), "ratios": [round(x, 3) for x in ratios]}
    out["median_ratio"] = round(statistics.median(ratios), 3) if ratios else None
    for tool in ("ours", "theirs"):
        mine = [r for r in picked if r.tool == tool]
        out[tool] = {
            "median_images_per_s": median_or_none([r.images_per_s for r in mine]),
            "median_wall_s": median_or_none([r.wall_s for r in mine]),
            "median_cpu_ms_per_image": median_or_none([r.cpu_ms_per_image for r in mine if r.cpu_ms_per_image]),
            "threads": mine[0].threads if mine else None,
            "median_startup_s": median_or_none([r.startup_s for r in mine if r.startup_s is not None]),
        }
    return out


def _build_class_archive() -> None:
    from spark_img2ds.demo import jvm_archive

    jvm_archive.build(quiet=True)


def ensure_class_archive(build: Callable[[], None] = _build_class_archive) -> str | None:
    """The JVM class archive our runs will map, built first when missing (as `make` does); None if none.

    Without it a local session starts 1-1.5 s later, which a 20,000-URL run feels as 4-5% of
    its throughput. The shared cache keeps a few archives and can prune this checkout's, so
    a run straight from `python -m bench.run_bench` would otherwise be measured without one.
    """
    from spark_img2ds.driver.session import class_archive

    archive = class_archive()
    if archive is None:
        print("bench: no JVM class archive for this Spark and JDK; building it (about 20 s) ...", flush=True)
        try:
            build()
        except Exception as err:  # the bench still runs, slower to start, and says so
            print(f"bench: warning: no JVM class archive ({err}); spark_img2ds starts slower", flush=True)
        archive = class_archive()
    return str(archive) if archive is not None else None


def machine_info(args: argparse.Namespace, theirs_venv: Path, class_archive: str | None = None) -> dict:
    import cv2
    import pyspark

    import spark_img2ds

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cores_used": args.processes,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "spark_img2ds": spark_img2ds.__version__,
        "pyspark": pyspark.__version__,
        "opencv_ours": cv2.__version__,
        "img2dataset_env": venv_versions(theirs_venv, ("img2dataset", "opencv-python-headless", "numpy", "pyarrow")),
        "jvm_class_archive": class_archive,
    }


def print_stage_table(per_image: dict[str, float], fetch: str, decode: str, resize: str, cores: int) -> None:
    print(f"\nPer-image CPU cost of each stage, single-threaded, measured in isolation (ms; {resize} downscaling):")
    for mode in ("full", "reduced"):
        costs = stages.pipeline(per_image, mode, fetch, resize)
        total = sum(costs.values())
        split = ", ".join(f"{k} {1000 * v:.2f} ({100 * v / total:.0f}%)" for k, v in costs.items())
        mark = "  <- acceptance" if mode == decode else ""
        print(
            f"  {mode:7s} decode: {split}; total {1000 * total:.2f} ms -> ceiling "
            f"{stages.ceiling(costs, cores):.0f} images/s on {cores} cores{mark}"
        )
    others = ", ".join(
        f"{lib} {1000 * per_image['fetch_' + lib]:.2f} ms" for lib in ("requests", "urllib3", "socket") if lib != fetch
    )
    print(
        f"  (fetch measured with {fetch}; with {others}; "
        f"exif parsing {1000 * per_image['exif']:.3f} ms/image on average, not part of the ceiling)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGHUP, raise_interrupt)
    if not become_subreaper():
        print("bench: could not become a child subreaper: CPU of orphaned JVMs/workers will be missed", flush=True)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping the processes it started", flush=True)
        return 130
    finally:
        REGISTRY.stop_all()


def _main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    work = args.out_dir
    work.mkdir(parents=True, exist_ok=True)
    cores = args.processes
    features = stages.job_pipeline()
    decode = features["decode"] if args.ceiling_decode == "auto" else args.ceiling_decode
    fetch = features["fetch"] if args.ceiling_fetch == "auto" else args.ceiling_fetch
    resize = features["resize"]
    print(
        f"bench: {cores} processes; spark_img2ds's pipeline is {features['fetch']}, {features['decode']} "
        f"JPEG decoding and {resize} downscaling; the acceptance ceiling uses {fetch} + {decode} decode + {resize}",
        flush=True,
    )

    corpus = corpus_mod.ensure_corpus(work, args.corpus_size, args.seed, args.make_corpus)
    print(f"bench: corpus {corpus.root} ({len(corpus.entries)} images, {corpus.total_bytes / 1e6:.0f} MB)", flush=True)
    theirs_venv = work / "img2dataset-venv"
    bench = Bench(args)
    if not args.skip_theirs:
        bench.theirs_bin = ensure_img2dataset(theirs_venv, args.img2dataset_version)

    class_archive = ensure_class_archive()
    if args.web_only:
        return _web_only(args, bench, started, theirs_venv, class_archive)
    results: dict = {
        "machine": machine_info(args, theirs_venv, class_archive),
        "args": _jsonable(vars(args)),
        "package_features": features,
        "corpus": {
            "root": str(corpus.root),
            "images": len(corpus.entries),
            "bytes": corpus.total_bytes,
            "stats": corpus.stats,
        },
    }
    probe = corpus.entries[0]["file"]
    server = start_static_server(args.server, not args.no_install, corpus.images, work / "server", probe)
    print(f"bench: serving the corpus with {server.kind} ({server.version}) at {server.prefix}", flush=True)
    results["cpu_server"] = {"kind": server.kind, "version": server.version}

    lists = work / "lists"
    cpu_list = corpus_mod.write_url_list(lists / "cpu.txt", corpus_mod.urls(corpus, server.prefix, args.urls))

    print(f"bench: measuring stage costs over {args.stage_sample} images ...", flush=True)
    gap = features["decode_gap"]
    measured = stages.measure(corpus, server.prefix, args.stage_sample, 256, work / "stage", gap=gap)
    per_image = measured["cpu_s_per_image"]
    ceil = stages.ceilings(per_image, cores, fetch, resize)
    results["stages"] = {
        **measured,
        "ceiling_fetch": fetch,
        "ceiling_decode": decode,
        "ceiling_resize": resize,
        "ceiling_images_per_s": {k: round(v, 1) for k, v in ceil.items()},
        "acceptance_ceiling": round(ceil[decode], 1),
        "pipelines_ms": {
            m: {k: round(1000 * v, 3) for k, v in stages.pipeline(per_image, m, fetch, resize).items()}
            for m in ("full", "reduced")
        },
    }
    print_stage_table(per_image, fetch, decode, resize, cores)

    print("\n" + header(), flush=True)
    threads = {"ours": args.ours_threads, "theirs": args.theirs_threads or 32}
    if not args.no_tune:
        tune_list = corpus_mod.write_url_list(
            lists / "tune.txt", corpus_mod.urls(corpus, server.prefix, args.tune_urls)
        )
        if not args.skip_theirs and args.theirs_threads is None:
            threads["theirs"] = bench.tune("theirs", tune_list, args.tune_urls, server)
        if args.tune_ours:
            threads["ours"] = bench.tune("ours", tune_list, args.tune_urls, server)
    results["threads"] = threads

    round_stages: dict[str, dict] = {}
    round_ceilings: dict[str, dict[str, float]] = {}

    def measure_round(rnd: str) -> None:
        """The stage costs again, right before the round, so its runs meet a ceiling measured under the same load."""
        again = stages.measure(corpus, server.prefix, args.stage_sample, 256, work / "stage", gap=gap)
        round_ceil = round_ceilings[rnd] = stages.ceilings(again["cpu_s_per_image"], cores, fetch, resize)
        round_stages[rnd] = {
            **again,
            "ceiling_images_per_s": {k: round(v, 1) for k, v in round_ceil.items()},
            "acceptance_ceiling": round(round_ceil[decode], 1),
        }
        print(
            f"bench: cpu round {rnd}: ceiling measured again: "
            + ", ".join(f"{k} decode {v:.0f}" for k, v in round_ceil.items())
            + " images/s",
            flush=True,
        )

    bench.alternate("cpu", args.rounds, cpu_list, args.urls, server, threads, before_round=measure_round)
    results["stages"]["by_round"] = round_stages
    if not args.skip_rss:
        rss_list = corpus_mod.write_url_list(lists / "rss.txt", corpus_mod.urls(corpus, server.prefix, args.rss_urls))
        for size in [int(x) for x in args.rss_shard_sizes.split(",") if x.strip()]:
            opts = JobOptions(args.processes, args.rss_threads, size)
            bench.one("ours", "rss", f"s{size}", rss_list, args.rss_urls, opts, server, sample_interval=0.2)
    if not args.skip_fast_decode:  # the default decode (twice the target kept) against fast_decode
        variants = {"default": {}, "fast": {"fast_decode": True}}
        bench.variants("decode", args.npz_rounds, variants, cpu_list, args.urls, server, threads["ours"])
    if not args.skip_npz:  # arrays (RGB uint8, 256 border) against JPEG shards
        variants = {"webdataset": {}, "npz": {"output_format": "npz"}}
        bench.variants("npz", args.npz_rounds, variants, cpu_list, args.urls, server, threads["ours"])
    server.stop()

    if not args.skip_latency:
        delayed = start_python_server(corpus.images, work / "server", probe, args.latency_min_ms, args.latency_max_ms)
        lat_list = corpus_mod.write_url_list(
            lists / "latency.txt", corpus_mod.urls(corpus, delayed.prefix, args.latency_urls)
        )
        lat_threads = {"ours": args.latency_threads, "theirs": args.latency_threads}
        bench.alternate("latency", args.latency_rounds, lat_list, args.latency_urls, delayed, lat_threads)
        delayed.stop()

    web_results = None if args.skip_web else run_web(args, bench, results)

    results["runs"] = [r.to_json() for r in bench.runs]
    summary = summarize(args, bench.runs, ceil, round_ceilings, decode)
    if web_results:
        summary["web"] = web_summary(args, bench.runs, web_results)
    results["summary"] = summary
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1, default=str))
    print_summary(args, summary, bench.runs, cores)
    if "web" in summary:
        print_web_summary(args, summary["web"])
    print(f"\nbench: figures written to {args.results} ({results['elapsed_s']:.0f}s in all)")
    return 0


def run_web(args: argparse.Namespace, bench: Bench, results: dict) -> dict | None:
    """The web scenario, in a namespace of its own (bench/web.py); its runs join bench.runs."""
    print("\n" + header(), flush=True)
    web_results = web.run_scenario(args, args.argv)
    if web_results:
        fields = set(RunResult.__dataclass_fields__)
        bench.runs += [RunResult(**{k: v for k, v in r.items() if k in fields}) for r in web_results["runs"]]
        results["web"] = {k: v for k, v in web_results.items() if k != "runs"}
    return web_results


def _web_only(
    args: argparse.Namespace, bench: Bench, started: float, theirs_venv: Path, class_archive: str | None
) -> int:
    """--web-only: the web scenario alone, its summary and the JSON."""
    ensure_nginx(not args.no_install)  # here, where apt-get can reach the network; not in the namespace
    results: dict = {"machine": machine_info(args, theirs_venv, class_archive), "args": _jsonable(vars(args))}
    web_results = run_web(args, bench, results)
    results["runs"] = [r.to_json() for r in bench.runs]
    if web_results:
        results["summary"] = {"web": web_summary(args, bench.runs, web_results)}
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1, default=str))
    print("\n=== all runs ===")
    print(header())
    for r in bench.runs:
        print(row(r, args.processes))
    if web_results:
        print("\n=== summary ===")
        print_web_summary(args, results["summary"]["web"])
    print(f"\nbench: figures written to {args.results} ({results['elapsed_s']:.0f}s in all)")
    return 0 if web_results else 1


def web_summary(args: argparse.Namespace, runs: list[RunResult], web_results: dict) -> dict:
    """Medians of the web runs and of their per-URL server counts (DNS queries, TLS connections)."""
    out = scenario_summary(runs, "web")
    per_run = web_results.get("per_run", {})
    for tool in ("ours", "theirs"):
        mine = [v for k, v in per_run.items() if k.startswith(tool + "-")]
        for key in ("dns_queries_per_url", "tls_connections_per_url", "requests_per_connection"):
            out[tool][key] = median_or_none([m[key] for m in mine])
    out["plan"] = web_results.get("plan", {})
    out["delay_ms"] = [args.web_min_ms, args.web_max_ms]
    out["dns_delay_ms"] = [args.web_dns_min_ms, args.web_dns_max_ms]
    out["threads"] = args.web_threads
    return out


def print_web_summary(args: argparse.Namespace, web_sum: dict) -> None:
    plan = web_sum["plan"]
    kinds = plan.get("url_kinds", {})
    failed = sum(v for k, v in kinds.items() if k != "ok")
    print(
        f"Web ({plan.get('urls')} URLs over {plan.get('hosts_used')} HTTPS host names, {web_sum['rounds']} round(s); "
        f"responses held {web_sum['delay_ms'][0]}-{web_sum['delay_ms'][1]} ms, DNS lookups "
        f"{web_sum['dns_delay_ms'][0]:g}-{web_sum['dns_delay_ms'][1]:g} ms; "
        f"{100 * failed / max(1, plan.get('urls', 1)):.0f}% failing: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()) if k != "ok")
        + f"; thread_count {web_sum['threads']} for both):"
    )
    for tool in ("ours", "theirs"):
        t = web_sum[tool]
        if t["median_images_per_s"] is None:
            continue
        print(
            f"  {TOOL_NAMES[tool]:13s} {_fmt(t['median_images_per_s'], 1):>8} images/s, "
            f"{_fmt(t['median_cpu_ms_per_image'])} CPU ms/image, DNS queries/URL {_fmt(t['dns_queries_per_url'])}, "
            f"TLS connections/URL {_fmt(t['tls_connections_per_url'])}"
        )
    if web_sum["median_ratio"] is not None:
        print(
            f"  ratio ours/theirs (median of rounds): {_fmt(web_sum['median_ratio'])}x "
            f"(per round: {', '.join(f'{x:.2f}' for x in web_sum['ratios'])})"
        )
    print("  (spark_img2ds runs with allow_private_networks=True: the test names resolve to loopback addresses)")


def summarize(
    args: argparse.Namespace,
    runs: list[RunResult],
    ceil: dict[str, float],
    round_ceilings: dict[str, dict[str, float]],
    decode: str,
) -> dict:
    """The figures of the summary.

    ceil: the ceilings (images/s by decode mode) measured once at the start; round_ceilings: those measured
    again before each CPU round, by round label. A fraction of the ceiling is the median over rounds of
    (the run's images/s / that round's ceiling).
    """
    cpu = scenario_summary(runs, "cpu")
    modes = list(ceil)
    ceiling_by_mode = {mode: {rnd: c[mode] for rnd, c in round_ceilings.items()} for mode in modes}
    out: dict = {
        "cpu": cpu,
        "ceilings": {mode: _round1(median_or_none(list(c.values()))) for mode, c in ceiling_by_mode.items()},
        "ceilings_by_round": {mode: _round1_values(c) for mode, c in ceiling_by_mode.items()},
        "ceilings_first_measurement": _round1_values(ceil),
    }
    fractions: dict[str, dict[str, dict] | None] = {}
    for tool in ("ours", "theirs"):
        ips_by_round = {r.label: r.images_per_s for r in runs if r.scenario == "cpu" and r.tool == tool}
        per_mode = {mode: per_round_fraction(ips_by_round, ceiling_by_mode[mode]) for mode in modes}
        fractions[tool] = per_mode if ips_by_round else None
    out["ceiling_fraction"] = {
        tool: {mode: f["median"] for mode, f in per_mode.items()} if per_mode else None
        for tool, per_mode in fractions.items()
    }
    ours_ips = cpu["ours"]["median_images_per_s"]
    ours_acc = fractions["ours"][decode] if fractions["ours"] else {"by_round": {}, "median": None}
    out["acceptance"] = {
        "ratio": cpu["median_ratio"],
        "ratio_target": TARGET_RATIO,
        "ceiling_decode": decode,
        "ceiling_images_per_s": out["ceilings"][decode],
        "ceiling_images_per_s_by_round": out["ceilings_by_round"][decode],
        "ceiling_fraction": ours_acc["median"],
        "ceiling_fraction_by_round": ours_acc["by_round"],
        "ceiling_fraction_target": TARGET_CEILING_FRACTION,
        "ceiling_first_measurement": {
            "ceiling_images_per_s": round(ceil[decode], 1),
            "ceiling_fraction": round(ours_ips / ceil[decode], 3) if ours_ips and ceil[decode] > 0 else None,
        },
    }
    if not args.skip_latency:
        lat = scenario_summary(runs, "latency")
        mean_delay = (args.latency_min_ms + args.latency_max_ms) / 2000
        busy_tasks = min(args.processes, -(-args.latency_urls // args.shard_size))  # one shard per task at a time
        lat["concurrency_bound_images_per_s"] = round(busy_tasks * args.latency_threads / mean_delay, 1)
        lat["delay_ms"] = [args.latency_min_ms, args.latency_max_ms]
        out["latency"] = lat
        out["acceptance"]["latency_ratio"] = lat["median_ratio"]
    for scenario, (variant, baseline) in {"npz": ("npz", "webdataset"), "decode": ("default", "fast")}.items():
        medians = variant_medians(runs, scenario, (baseline, variant))
        if medians[variant] is not None and medians[baseline]:
            out[scenario] = {"median_images_per_s": medians, "ratio": round(medians[variant] / medians[baseline], 3)}
    rss = {r.label: r.peak_worker_rss_mb for r in runs if r.scenario == "rss"}
    if rss:
        sizes = [v for v in rss.values() if v]
        out["rss"] = {
            "threads": args.rss_threads,
            "peak_worker_rss_mb_by_shard_size": rss,
            "growth": round(max(sizes) / min(sizes), 3) if sizes else None,
        }
    return out


def _round1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _round1_values(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in values.items()}


def print_summary(args: argparse.Namespace, summary: dict, runs: list[RunResult], cores: int) -> None:
    print("\n=== all runs ===")
    print(header())
    for r in runs:
        print(row(r, cores))
    print(
        "(CPU ms/img: the tool's whole process tree; srv: the HTTP server; other CPU%: load on the machine from "
        "processes outside the benchmark)"
    )
    cpu = summary["cpu"]
    acc = summary["acceptance"]
    print("\n=== summary ===")
    ours, theirs = cpu["ours"], cpu["theirs"]
    print(f"CPU-bound ({args.urls} URLs, {args.rounds} round(s), wall time of the whole command):")
    print(
        f"  spark_img2ds  {_fmt(ours['median_images_per_s'], 1):>8} images/s  (thread_count {ours['threads']}, "
        f"{_fmt(ours['median_cpu_ms_per_image'])} CPU ms/image)"
    )
    if ours["median_startup_s"] is not None:
        print(f"{'':16}({ours['median_startup_s']:.0f}s of it to the shard plan: Spark start-up, input reading)")
    if theirs["median_images_per_s"]:
        print(
            f"  img2dataset   {_fmt(theirs['median_images_per_s'], 1):>8} images/s  (thread_count "
            f"{theirs['threads']}, {_fmt(theirs['median_cpu_ms_per_image'])} CPU ms/image)"
        )
        print(
            f"  ratio ours/theirs (median of rounds): {_fmt(cpu['median_ratio'])}x  "
            f"(per round: {', '.join(f'{x:.2f}' for x in cpu['ratios'])}; target >= {TARGET_RATIO}x)"
        )
    ceil, first = summary["ceilings"], summary["ceilings_first_measurement"]
    print(
        f"  compute ceiling ({cores} cores / CPU per image of the stages; median of the measurements before each "
        f"round): full decode {_fmt(ceil['full'], 0)}, reduced decode {_fmt(ceil['reduced'], 0)} images/s "
        f"(first measurement: {first['full']:.0f}, {first['reduced']:.0f})"
    )
    frac = summary["ceiling_fraction"]["ours"]
    if frac and acc["ceiling_fraction"] is not None:
        print(
            f"  spark_img2ds reaches {100 * frac['full']:.0f}% of the full-decode ceiling and "
            f"{100 * frac['reduced']:.0f}% of the reduced-decode one (median of the per-round fractions: a round's "
            f"images/s / that round's ceiling); the acceptance ceiling is {acc['ceiling_decode']} decode: "
            f"{100 * acc['ceiling_fraction']:.0f}% (target >= {100 * TARGET_CEILING_FRACTION:.0f}%)"
        )
        per_round = ", ".join(
            f"{rnd}: {acc['ceiling_images_per_s_by_round'][rnd]:.0f} images/s, {100 * f:.0f}%"
            for rnd, f in acc["ceiling_fraction_by_round"].items()
        )
        print(f"  {acc['ceiling_decode']}-decode ceiling and spark_img2ds's fraction of it, per round: {per_round}")
    if "latency" in summary:
        lat = summary["latency"]
        print(
            f"Latency ({args.latency_urls} URLs, {lat['delay_ms'][0]}-{lat['delay_ms'][1]} ms per response, "
            f"thread_count {args.latency_threads} for both; concurrency bound "
            f"{lat['concurrency_bound_images_per_s']:.0f} images/s):"
        )
        print(
            f"  spark_img2ds {_fmt(lat['ours']['median_images_per_s'], 1)} images/s, img2dataset "
            f"{_fmt(lat['theirs']['median_images_per_s'], 1)} images/s, ratio {_fmt(lat['median_ratio'])}x "
            f"(target >= 1.0x)"
        )
    if "rss" in summary:
        rss = summary["rss"]
        sizes = ", ".join(f"{k[1:]}/shard: {_fmt(v, 0)} MB" for k, v in rss["peak_worker_rss_mb_by_shard_size"].items())
        print(
            f"Memory: peak RSS of one PySpark worker at thread_count {rss['threads']}: {sizes} "
            f"(largest/smallest {_fmt(rss['growth'])})"
        )
    if "decode" in summary:
        dec = summary["decode"]
        print(
            f"Decoding ({args.urls} URLs, spark_img2ds only): default (twice the target kept) "
            f"{_fmt(dec['median_images_per_s']['default'], 1)} images/s, fast_decode "
            f"{_fmt(dec['median_images_per_s']['fast'], 1)} images/s, ratio {_fmt(dec['ratio'])}"
        )
    if "npz" in summary:
        npz = summary["npz"]
        print(
            f"Arrays ({args.urls} URLs, spark_img2ds only, RGB uint8 arrays in npz against JPEG in webdataset): "
            f"npz {_fmt(npz['median_images_per_s']['npz'], 1)} images/s, webdataset "
            f"{_fmt(npz['median_images_per_s']['webdataset'], 1)} images/s, ratio {_fmt(npz['ratio'])}"
        )


def _jsonable(values: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


if __name__ == "__main__":
    sys.exit(main())
