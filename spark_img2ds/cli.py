"""The spark-img2ds command: flags and an optional YAML file build one Config."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from spark_img2ds.config import Config, option_fields
from spark_img2ds.errors import ConfigError, Img2dsError

PROG = "spark-img2ds"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, not a usage dump
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Download image URL lists into a dataset with Spark (img2dataset-compatible options).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("positional_url_list", nargs="?", metavar="URL_LIST", help="same as --url_list")
    parser.add_argument("--config", help="YAML file of options; flags given here override it")
    for f in option_fields():
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        text = f.metadata["help"].replace("%", "%%")  # argparse formats help strings with %
        if str(f.type) == "bool":
            parser.add_argument(*names, dest=f.name, nargs="?", const="true", metavar="BOOL", help=text)
        else:
            parser.add_argument(*names, dest=f.name, metavar=f.name.upper(), help=text)
    return parser


def _load_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text: {err.reason}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option names to values")
    return data


def config_from_args(argv: list[str]) -> Config:
    """The Config for a command line: defaults, then the YAML file, then flags."""
    ns = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    if "config" in ns:
        values.update(_load_yaml(ns.pop("config")))
    positional = ns.pop("positional_url_list", None)
    if positional is not None:
        if "url_list" in ns:
            raise ConfigError("give the url list once: either as an argument or with --url_list")
        ns["url_list"] = positional
    values.update(ns)
    return Config.from_dict(values)


def stop_before_exit(spark) -> None:
    """Stop Spark (executors, Python workers, temporary folders) when the process is about to end.

    SparkSession.stop() then also shuts PySpark's accumulator server down, which
    waits for its handler's one-second select() poll: about 1 s of every run of
    this command. That server's thread is a daemon and ends with the process.
    """
    jsc = getattr(spark.sparkContext, "_jsc", None)
    if jsc is None:
        spark.stop()
        return
    jsc.stop()


def _dataset_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"{PROG} {name}", description=description)
    parser.add_argument("output_folder", metavar="OUT", help="the dataset folder or URL (s3://...)")
    parser.add_argument("--storage_options", default="{}", help="fsspec options as JSON (default: the environment's)")
    return parser


def _open_dataset(args: argparse.Namespace) -> tuple[Any, str, str]:
    """(filesystem, root, the folder as shown) of an existing dataset named on the command line."""
    import json

    from spark_img2ds.dataset import storage
    from spark_img2ds.secrets import redact_url

    try:
        options = json.loads(args.storage_options)
    except json.JSONDecodeError as err:
        raise ConfigError(f"storage_options is not valid JSON: {err.msg}") from None
    fs, root = storage.filesystem(args.output_folder, options)
    shown = redact_url(args.output_folder)
    if not fs.exists(root):
        raise ConfigError(f"{shown} does not exist")
    return fs, root, shown


def _status(argv: list[str]) -> int:
    """spark-img2ds status OUT [--json]: how far the run writing OUT is, from its files."""
    import json
    import time

    from spark_img2ds.dataset.status import format_status, read_status

    parser = _dataset_parser("status", "How far a run is (or how it ended), read from OUT's files.")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, for scripts")
    args = parser.parse_args(argv)
    fs, root, shown = _open_dataset(args)
    status = read_status(fs, root, time.time())
    print(json.dumps(status.to_json(), indent=2) if args.json else format_status(status, shown))
    return 0 if status.state in ("running", "finished") else 1


def _schema(argv: list[str]) -> int:
    """spark-img2ds schema: the JSON Schema of a YAML config file."""
    import json

    from spark_img2ds.schema import config_schema

    _Parser(prog=f"{PROG} schema", description="Print the JSON Schema of a --config YAML file.").parse_args(argv)
    print(json.dumps(config_schema(), indent=2))
    return 0


def _report(argv: list[str]) -> int:
    """spark-img2ds report OUT: (re)build OUT/_report.html from its files."""
    from spark_img2ds.report.build import write_report

    args = _dataset_parser("report", "Build OUT/_report.html, for a finished or running run.").parse_args(argv)
    fs, root, shown = _open_dataset(args)
    print(write_report(fs, root, shown))
    return 0


SUBCOMMANDS = {"status": _status, "schema": _schema, "report": _report}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        try:
            return SUBCOMMANDS[argv[0]](argv[1:])
        except Img2dsError as err:
            print(f"{PROG} {argv[0]}: error: {err}", file=sys.stderr)
            return 2
    try:
        cfg = config_from_args(argv)
    except Img2dsError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    from spark_img2ds.api import run

    try:
        summary = run(cfg)
    except Img2dsError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    finally:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is not None:
            stop_before_exit(spark)
    print(summary)
    return 0 if summary.complete else 1


if __name__ == "__main__":
    sys.exit(main())
