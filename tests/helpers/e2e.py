"""Helpers for end-to-end tests: building URL lists and reading datasets back."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import fsspec
import pyarrow.parquet as pq

from spark_img2ds.net.robots import OPT_OUT_MESSAGE

# (path on the sample server, expected status, expected error message or None)
FAULT_CASES = [
    ("/img/china.jpg", "success", None),
    ("/img/alpha.png", "success", None),
    ("/img/pic.webp", "success", None),
    ("/img/exif_rotated.jpg", "success", None),
    ("/status/404", "failed_to_download", "HTTP 404 Not Found"),
    ("/status/500", "failed_to_download", "HTTP 500 Internal Server Error"),
    ("/hang/20", "failed_to_download", "timed out waiting for the server"),
    ("/reset", "failed_to_download", "connection reset by server"),
    ("/truncated/china.jpg", "failed_to_download", "truncated response body"),
    ("/notimage", "failed_to_resize", "image decoding error: not a supported image format"),
    ("/redirect/3/flower.jpg", "success", None),
    ("/redirect-loop", "failed_to_download", "too many redirects"),
    ("/robots/noai/coffee.jpg", "failed_to_download", OPT_OUT_MESSAGE),
    ("/robots/otherbot%3A%20noai/coffee.jpg", "success", None),
    ("/corrupt/rocket.jpg", "failed_to_resize", "image decoding error: not a supported image format"),
    ("", "failed_to_download", "missing url"),
    ("/img/grace_hopper.jpg", "success", None),
]


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def fault_rows(base_url: str) -> list[dict]:
    return [
        {"url": (base_url + path) if path else "", "caption": f"caption {i}, with a comma", "rid": str(i)}
        for i, (path, _, _) in enumerate(FAULT_CASES)
    ]


def read_metadata(folder: str, storage_options: dict | None = None) -> list[dict]:
    """Every row of every {shard}.parquet, in shard order."""
    fs, root = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    rows = []
    for path in sorted(fs.glob(root.rstrip("/") + "/*.parquet")):
        with fs.open(path, "rb") as f:
            rows.extend(pq.read_table(f).to_pylist())
    return rows


def read_tars(folder: str, storage_options: dict | None = None) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} over every {shard}.tar."""
    fs, root = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    samples: dict[str, dict[str, bytes]] = {}
    for path in sorted(fs.glob(root.rstrip("/") + "/*.tar")):
        with fs.open(path, "rb") as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return samples


def read_json(folder: str, name: str, storage_options: dict | None = None) -> dict:
    fs, root = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    with fs.open(root.rstrip("/") + "/" + name, "rb") as f:
        return json.load(f)


def tar_member_names(folder: str, storage_options: dict | None = None) -> list[str]:
    """Every member name of every {shard}.tar, duplicates kept (read_tars would hide them)."""
    fs, root = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    names: list[str] = []
    for path in sorted(fs.glob(root.rstrip("/") + "/*.tar")):
        with fs.open(path, "rb") as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
            names.extend(m.name for m in tar.getmembers())
    return names


def assert_each_row_once(folder: str, urls: list[str], storage_options: dict | None = None) -> list[dict]:
    """Every input URL is exactly one metadata row, every key once, every success once in the tars."""
    rows = read_metadata(folder, storage_options)
    assert sorted(r["url"] for r in rows) == sorted(urls)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys))
    members = tar_member_names(folder, storage_options)
    assert len(members) == len(set(members)), "a tar member is duplicated"
    successes = {r["key"] for r in rows if r["status"] == "success"}
    assert {m.split(".", 1)[0] for m in members if m.endswith(".jpg")} == successes
    fs, root = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    names = [p.rsplit("/", 1)[-1] for p in fs.find(root)]
    assert "_SUCCESS" in names
    assert not [n for n in names if ".img2ds-tmp-" in n], "temporary files were left behind"
    assert not fs.exists(root.rstrip("/") + "/_running"), "heartbeats were left behind"
    return rows
