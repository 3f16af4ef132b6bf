"""Output storage through fsspec, with a commit protocol.

A file becomes visible under its final name only when it is complete: on a
local (or mounted) filesystem it is written to a temporary name and renamed;
on object stores (S3 and the like) the object appears only on a successful
close, and a failed write is discarded (the multipart upload is aborted).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec

from spark_img2ds.dataset.layout import RUNNING_DIR

TMP_MARK = ".img2ds-tmp-"


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the path inside it for an output URL."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path.rstrip("/") or "/"


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protocols or "local" in protocols


def join(*parts: str) -> str:
    return posixpath.join(*parts)


def _abandon(f: IO[bytes]) -> None:
    """Drop a half-written object-store file without publishing it."""
    discard = getattr(f, "discard", None)
    if discard is not None:
        # Aborts the multipart upload; if that fails too, cleanup_partial aborts it later.
        with contextlib.suppress(Exception):
            discard()
        f.closed = True  # fsspec buffered files allow this; close() would now upload
    else:
        f.close()


@contextlib.contextmanager
def committed_open(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[IO[bytes]]:
    """Open path for writing; it is published only if the block exits without error.

    Local disk: a temporary name renamed into place. Object stores: the object
    appears on close only; a failed write is discarded.
    """
    if is_local(fs):
        tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex}"
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        f = fs.open(tmp, "wb")
        try:
            yield f
            f.close()
            os.replace(tmp, path)  # atomic; refuses to land inside a folder of that name
        except BaseException:
            f.close()
            with contextlib.suppress(FileNotFoundError):
                fs.rm(tmp)
            raise
        return
    f = fs.open(path, "wb")
    try:
        yield f
    except BaseException:
        _abandon(f)
        raise
    f.close()


def check_writable(fs: fsspec.AbstractFileSystem, root: str, shown: str) -> None:
    """On a local disk, fail before anything runs if root cannot be created or written (ConfigError).

    Checked without writing: the nearest existing folder must be a writable directory.
    Object stores are checked by their first write.
    """
    from spark_img2ds.errors import ConfigError

    if not is_local(fs):
        return
    path = os.path.abspath(root)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ConfigError(f"output_folder {shown!r} cannot be created: {path} is a file, not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output_folder {shown!r} is not writable: no write permission on {path}")


def write_committed(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    with committed_open(fs, path) as f:
        f.write(data)


def write_json(fs: fsspec.AbstractFileSystem, path: str, obj: Any) -> None:
    write_committed(fs, path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json_files(fs: fsspec.AbstractFileSystem, paths: list[str]) -> dict[str, Any]:
    """Several small JSON files at once (fsspec fetches them concurrently on object stores)."""
    if not paths:
        return {}
    raw = fs.cat(paths, on_error="omit")
    out = {}
    for path, data in raw.items():
        try:
            out[path.split("://", 1)[-1]] = json.loads(data)
        except ValueError:
            continue  # a damaged marker counts as missing: that shard is done again
    return out


def cleanup_partial(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Remove what killed attempts left behind; returns what was removed.

    Local disk: temporary files of the commit protocol. S3: unfinished multipart
    uploads under the dataset prefix (they are invisible but billed). Call it only
    when no task of this dataset is running.
    """
    removed: list[str] = []
    if is_local(fs):
        for folder, _, files in os.walk(root):
            for name in files:
                if TMP_MARK in name:
                    path = os.path.join(folder, name)
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                        removed.append(path)
    elif hasattr(fs, "call_s3") and hasattr(fs, "split_path"):
        bucket, prefix, _ = fs.split_path(root)
        for key, upload_id in _multipart_uploads(fs, bucket, prefix.rstrip("/") + "/" if prefix else ""):
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
            removed.append(f"{bucket}/{key} (multipart upload {upload_id})")
    if fs.exists(join(root, RUNNING_DIR)):
        fs.rm(join(root, RUNNING_DIR), recursive=True)
    return removed


def _multipart_uploads(fs: Any, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(key, upload id) of every unfinished multipart upload under prefix, page by page."""
    marker: dict[str, str] = {}
    while True:
        page = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **marker)
        for upload in page.get("Uploads", []) or []:
            yield upload["Key"], upload["UploadId"]
        if not page.get("IsTruncated"):
            return
        marker = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}
