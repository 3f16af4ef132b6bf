"""Reading the URL list into a Spark DataFrame with Spark's own readers.

The input is never collected to the driver. Each row keeps where it came from
(file path and split start) so that sharding can number rows in input order.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from spark_img2ds.config import Config
from spark_img2ds.dataset.columns import CAPTION, URL
from spark_img2ds.errors import InputError
from spark_img2ds.secrets import redact_url

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FILE_COL = "_img2ds_file"
BLOCK_COL = "_img2ds_block"


def _source_format(input_format: str) -> str:
    """Spark reader name for an input_format (compression is detected from the file name)."""
    return input_format.split(".", 1)[0]


def _local_path(path: str) -> str | None:
    """The filesystem path of a local url_list (plain or file://); None for remote URLs."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def check_input(cfg: Config) -> None:
    """Fail fast, before Spark starts, on a local url_list that does not exist."""
    if not isinstance(cfg.url_list, str):
        return  # a DataFrame: Spark checks it
    local = _local_path(cfg.url_list)
    if local is not None and not os.path.exists(local):
        raise InputError(f"url_list not found: {redact_url(cfg.url_list)}")


def _reader(spark: SparkSession, cfg: Config, folder: bool):
    fmt = _source_format(cfg.input_format)
    reader = spark.read
    if folder:
        reader = reader.option("pathGlobFilter", f"*.{cfg.input_format}").option("recursiveFileLookup", "true")
    if fmt in ("csv", "tsv"):
        # RFC 4180 quoting (a quote is escaped by doubling it); captions may span lines.
        reader = (
            reader.format("csv")
            .option("header", "true")
            .option("sep", "\t" if fmt == "tsv" else ",")
            .option("multiLine", "true")
            .option("escape", '"')
        )
    elif fmt == "json":
        # img2dataset's "json" is a JSON array of records per file.
        reader = reader.format("json").option("multiLine", "true")
    elif fmt == "jsonl":
        reader = reader.format("json")
    else:
        reader = reader.format("text" if fmt == "txt" else fmt)
    return reader


def read_input(spark: SparkSession, cfg: Config) -> DataFrame:
    """The input as a DataFrame with url, caption (if any), extra columns and provenance columns.

    The caller checks a local path first (check_input), before Spark starts.
    """
    from pyspark.sql import functions as F

    path = cfg.url_list
    local = _local_path(path)
    folder = os.path.isdir(local) if local is not None else path.endswith("/")
    try:
        df = _reader(spark, cfg, folder).load(path)
    except Exception as err:  # Spark raises AnalysisException for missing paths and unreadable files
        raise InputError(
            f"could not read url_list {redact_url(path)!r} as {cfg.input_format}: {first_line(err)}"
        ) from None

    if _source_format(cfg.input_format) == "txt":
        df = df.select(F.trim(F.col("value")).alias(cfg.url_col), "_metadata")
        df = df.where(F.col(cfg.url_col) != "")
        columns = {cfg.url_col}
    else:
        columns = set(df.columns)
    wanted = [cfg.url_col] + ([cfg.caption_col] if cfg.caption_col else []) + cfg.additional_columns
    if _source_format(cfg.input_format) == "txt" and len(wanted) > 1:
        raise InputError(
            "txt input has only a url column; caption_col and save_additional_columns need csv, json or parquet"
        )
    missing = [c for c in wanted if c not in columns]
    if missing:
        hint = ""
        if "_corrupt_record" in columns:
            hint = f" (Spark could not parse its records as {cfg.input_format}: is input_format right?)"
        raise InputError(
            f"column(s) {', '.join(repr(m) for m in missing)} not found in {redact_url(path)}; "
            f"available columns: {', '.join(sorted(columns)) or 'none'}{hint}"
        )
    _check_url_type(df, cfg, redact_url(path))
    return _project(df, cfg, provenance=True)


def from_dataframe(df: DataFrame, cfg: Config) -> DataFrame:
    """A user's DataFrame as input; rows are numbered in partition order."""
    from pyspark.sql import functions as F

    wanted = [cfg.url_col] + ([cfg.caption_col] if cfg.caption_col else []) + cfg.additional_columns
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputError(
            f"column(s) {', '.join(repr(m) for m in missing)} not found in the DataFrame; "
            f"available columns: {', '.join(df.columns)}"
        )
    _check_url_type(df, cfg, "the DataFrame")
    df = df.withColumn(FILE_COL, F.lit("")).withColumn(BLOCK_COL, F.spark_partition_id().cast("long"))
    return _project(df, cfg, provenance=False)


def _check_url_type(df: DataFrame, cfg: Config, source: str) -> None:
    """The url column must hold text: a number or a struct there is a wrong column, not a URL."""
    kind = df.schema[cfg.url_col].dataType.simpleString()
    if kind != "string":
        raise InputError(
            f"url column {cfg.url_col!r} in {source} holds {kind} values, not text; point url_col at the column of URLs"
        )


def _project(df: DataFrame, cfg: Config, provenance: bool) -> DataFrame:
    from pyspark.sql import functions as F

    cols = [F.col(cfg.url_col).cast("string").alias(URL)]
    if cfg.caption_col:
        cols.append(F.col(cfg.caption_col).cast("string").alias(CAPTION))
    cols += [F.col(c) for c in cfg.additional_columns]
    if provenance:
        cols += [F.col("_metadata.file_path").alias(FILE_COL), F.col("_metadata.file_block_start").alias(BLOCK_COL)]
    else:
        cols += [F.col(FILE_COL), F.col(BLOCK_COL)]
    return df.select(*cols)


def first_line(err: BaseException) -> str:
    """The useful line of a Spark error (the Java message, not the py4j call site)."""
    java = getattr(err, "java_exception", None)
    text = (str(java) if java is not None else str(err)).strip().splitlines()
    return text[0] if text else type(err).__name__
