"""Every check of a Config's values; the first problem raises ConfigError naming the option."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from spark_img2ds.dataset.columns import HASHES, RESERVED_COLUMNS
from spark_img2ds.errors import ConfigError, is_int, is_number, require

MAX_TIMEOUT = 3600.0
DISTRIBUTORS = ("pyspark", "multiprocessing")  # img2dataset's; Spark distributes either way
LIST_OPTIONS = (
    "save_additional_columns",
    "disallowed_header_directives",
    "verify_hash",
    "allowed_networks",
    "retry_errors",
)


def field_kinds(config: Any) -> dict[str, type]:
    """int, float, bool or str for each option, from the dataclass annotations."""
    return {
        f.name: {"int": int, "float": float, "bool": bool}.get(str(f.type), str) for f in dataclasses.fields(config)
    }


def validate(c: Any) -> None:
    """Check every option of a Config; the first problem raises ConfigError naming it."""
    kinds = field_kinds(c)
    if c.retry_failed_from is not None:
        require(
            isinstance(c.retry_failed_from, str) and c.retry_failed_from.strip() != "",
            "retry_failed_from must be the path or URL of a dataset",
        )
        require(
            c.url_list is None,
            "retry_failed_from reads the rows to download again from the dataset's shard parquets: leave url_list out",
        )
        require(
            c.incremental_mode == "incremental",
            "retry_failed_from rewrites shards in place; incremental_mode does not apply",
        )
    else:
        require(c.url_list is not None, "url_list is required: a file, a folder of files or a Spark DataFrame")
        require(c.retry_errors is None, "retry_errors needs retry_failed_from: the dataset whose failed rows to retry")
    if isinstance(c.url_list, str):
        require(c.url_list.strip() != "", "url_list must not be empty")
    elif c.url_list is not None:
        require(hasattr(c.url_list, "sparkSession"), "url_list must be a path or a Spark DataFrame")
    for name in ("processes_count", "thread_count", "number_sample_per_shard", "oom_shard_count"):
        v = getattr(c, name)
        require(is_int(v) and v >= 1, f"{name} must be a positive integer, got {v!r}")
    for name in (
        "retries",
        "max_shard_retry",
        "subjob_size",
        "shards_per_task",
        "malloc_arena_max",
        "max_redirects",
        "max_download_bytes",
        "max_connections_per_host",
    ):
        v = getattr(c, name)
        require(is_int(v) and v >= 0, f"{name} must be an integer >= 0, got {v!r}")
    for name in ("timeout", "connect_timeout", "progress_interval"):
        v = getattr(c, name)
        require(
            is_number(v) and 0 < v <= MAX_TIMEOUT,
            f"{name} must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, got {v!r}",
        )
    require(
        isinstance(c.pin_cpus, bool) or c.pin_cpus == "auto",
        f"pin_cpus must be auto, true or false, got {c.pin_cpus!r}",
    )
    require(
        is_number(c.stall_timeout) and 0 <= c.stall_timeout <= 86400,
        f"stall_timeout must be a number of seconds from 0 (automatic) to 86400, got {c.stall_timeout!r}",
    )
    for f in dataclasses.fields(c):
        choices = f.metadata.get("choices")
        if choices is not None:
            v = getattr(c, f.name)
            require(v in choices, f"{f.name} must be one of {', '.join(choices)}; got {v!r}")
        if kinds[f.name] is bool:
            v = getattr(c, f.name)
            require(isinstance(v, bool), f"{f.name} must be true or false, got {v!r}")
    c.image_options()  # checks the image options
    c.conversion_options()  # and the array options
    try:
        c.address_policy()
    except ValueError as err:
        raise ConfigError(str(err)) from None
    require(
        c.compute_hash is None or c.compute_hash in HASHES,
        f"compute_hash must be one of {', '.join(HASHES)} or none; got {c.compute_hash!r}",
    )
    require(c.oom_shard_count <= 12, f"oom_shard_count must be at most 12, got {c.oom_shard_count}")
    for name in ("url_col", "output_folder", "distributor"):
        v = getattr(c, name)
        require(isinstance(v, str) and v.strip() != "", f"{name} must be a non-empty string, got {v!r}")
    require(
        c.proxy is None or (isinstance(c.proxy, str) and re.match(r"^https?://[^/\s]+/?$", c.proxy) is not None),
        "proxy must be a URL like http://host:3128 (http or https, no path)",
    )
    require(
        isinstance(c.metadata, dict) and all(isinstance(k, str) and k for k in c.metadata),
        "metadata must be a JSON object with non-empty string keys",
    )
    clash = sorted(RESERVED_COLUMNS.intersection(c.metadata or {}))
    require(not clash, f"metadata may not set reserved column names: {', '.join(clash)}")
    for name in ("label_col", "split_col"):
        v = getattr(c, name)
        require(v is None or v not in (c.url_col,), f"{name} must not be url_col")
        require(v is None or v not in RESERVED_COLUMNS, f"{name} may not be a reserved column name: {v!r}")
    for name in ("caption_col", "bbox_col", "user_agent_token", "master", "label_col", "split_col"):
        v = getattr(c, name)
        require(v is None or (isinstance(v, str) and v.strip() != ""), f"{name} must be a non-empty string or none")
    for name in LIST_OPTIONS:
        v = getattr(c, name)
        require(
            v is None or (isinstance(v, list) and all(isinstance(x, str) and x for x in v)),
            f"{name} must be a list of non-empty strings, got {v!r}",
        )
    extra = list(c.save_additional_columns or [])
    clash = sorted(RESERVED_COLUMNS.intersection(extra))
    require(not clash, f"save_additional_columns may not use reserved column names: {', '.join(clash)}")
    require(len(set(extra)) == len(extra), "save_additional_columns lists a column twice")
    require(c.url_col not in extra, f"save_additional_columns must not repeat url_col {c.url_col!r}")
    require(c.caption_col is None or c.caption_col not in extra, "save_additional_columns must not repeat caption_col")
    require(isinstance(c.storage_options, dict), "storage_options must be a JSON object (a dict)")
    require(
        c.distributor in DISTRIBUTORS, f"distributor must be one of {', '.join(DISTRIBUTORS)}; got {c.distributor!r}"
    )
    if c.verify_hash is not None:
        require(
            len(c.verify_hash) == 2 and c.verify_hash[1] in HASHES,
            f"verify_hash must be [input column, hash type] with a hash type among {', '.join(HASHES)}",
        )
        require(c.verify_hash[0] not in (c.url_col, c.caption_col), "verify_hash's column must be its own column")
    # Accepted for img2dataset parity and refused, never ignored silently.
    require(
        not c.enable_wandb,
        "enable_wandb is not supported: every figure of a run is in {output_folder}/_summary.json",
    )
