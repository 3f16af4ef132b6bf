"""NPZ files with a JSON manifest: streamed writes, pickle-free reads, and a finished dataset as a stream.

An npz is a zip of .npy members. NpzStream writes one member at a time to any binary
file object (a local temporary file, an S3 upload), so memory holds one array, not the
shard; members carry a fixed timestamp, so the same arrays give the same bytes. The
manifest is a JSON string stored as a unicode array under ``__manifest_json__``, so
``numpy.load(path, allow_pickle=False)`` reads everything.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

import fsspec
import numpy as np

from spark_img2ds.dataset.storage import committed_open
from spark_img2ds.errors import NPZError

MANIFEST_KEY = "__manifest_json__"
SCHEMA_VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)


class NpzStream:
    """Writes arrays into an npz on a binary file object, one member at a time."""

    def __init__(self, f: IO[bytes], compressed: bool = False) -> None:
        self._zip = zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
        self._names: set[str] = set()

    def add(self, name: str, array: np.ndarray) -> None:
        array = np.asanyarray(array)
        if array.dtype.hasobject:
            raise NPZError(f"array {name!r} holds Python objects: npz files here never carry pickles")
        if name in self._names:
            raise NPZError(f"array {name!r} is written twice")
        self._names.add(name)
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
        info.compress_type = self._zip.compression
        info.external_attr = 0o644 << 16
        with self._zip.open(info, "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.require(array, requirements="C"), allow_pickle=False)

    def discard(self) -> None:
        """Stop writing (the file is being thrown away): close the zip without raising."""
        with contextlib.suppress(Exception):
            self._zip.close()

    def close(self, manifest: dict[str, Any] | None = None) -> None:
        """Write the manifest (if any) last and finish the zip directory."""
        if manifest is not None:
            self.add(MANIFEST_KEY, np.array(json.dumps(manifest, sort_keys=True, default=str)))
        self._zip.close()


def read_manifest(stored: np.ndarray) -> dict[str, Any]:
    """The manifest dict from its stored unicode array (0-d, as written here, or a 1-element array)."""
    return json.loads(str(np.asarray(stored).reshape(-1)[0]))


def save_npz(
    results: Any,
    path: str,
    manifest: dict[str, Any] | None = None,
    compressed: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write arrays to a local path or fsspec URL: a dict of name -> array, or ConversionResults (keyed 0, 1, ...).

    Failed ConversionResults are listed in the manifest with their error; no array is pickled.
    """
    arrays, rows = _arrays_and_rows(results)
    for name, array in arrays:
        if array.dtype.hasobject:  # before any file is opened
            raise NPZError(f"array {name!r} holds Python objects: npz files here never carry pickles")
    full = {"schema_version": SCHEMA_VERSION, **(manifest or {}), "rows": rows}
    fs, target = fsspec.core.url_to_fs(path, **(storage_options or {}))
    with committed_open(fs, target) as f:
        stream = NpzStream(f, compressed)
        try:
            for name, array in arrays:
                stream.add(name, array)
            stream.close(full)
        except BaseException:
            stream.discard()
            raise


def _arrays_and_rows(results: Any) -> tuple[list[tuple[str, np.ndarray]], list[dict[str, Any]]]:
    if isinstance(results, dict):
        items = list(results.items())
        if any(not isinstance(k, str) or k == MANIFEST_KEY for k, _ in items):
            raise NPZError(f"array names must be strings other than {MANIFEST_KEY}")
        arrays = [(k, np.asanyarray(v)) for k, v in items]
        return arrays, [{"key": k, "shape": list(a.shape), "dtype": str(a.dtype)} for k, a in arrays]
    arrays, rows = [], []
    for i, r in enumerate(_as_list(results)):
        key = str(i)
        row = {"key": key, "source": getattr(r, "source", None), "status": "success" if r.ok else "error"}
        if r.ok:
            arrays.append((key, r.array))
            row.update(shape=list(r.array.shape), dtype=str(r.array.dtype), format=r.format, mode=r.mode)
        else:
            row["error"] = r.error
        rows.append(row)
    return arrays, rows


def _as_list(results: Any) -> list:
    if hasattr(results, "results"):  # a BatchResult
        return list(results.results)
    if isinstance(results, Iterable):
        return list(results)
    raise NPZError("save_npz takes a dict of arrays, ConversionResults or a BatchResult")


def load_npz(path: str, storage_options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, manifest) of an npz; NPZError for object arrays (no pickle, ever) or a file that is not one."""

    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as f:
            raw = f.read()
    except OSError as err:
        raise NPZError(f"{path}: cannot be read ({type(err).__name__})") from None
    if not raw.startswith(b"PK"):
        raise NPZError(f"{path}: not a readable npz file")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name != MANIFEST_KEY}
            manifest = read_manifest(data[MANIFEST_KEY]) if MANIFEST_KEY in data.files else {}
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise NPZError(f"{path}: holds object arrays, which need pickle; refused") from None
        raise NPZError(f"{path}: not a readable npz file") from None
    except (zipfile.BadZipFile, OSError, EOFError):
        raise NPZError(f"{path}: not a readable npz file") from None
    return arrays, manifest


def iter_npz_dataset(
    path: str, storage_options: dict[str, Any] | None = None, single_file: bool = False
) -> Iterator[tuple[str, np.ndarray, dict]]:
    """(key, array, metadata) of every successful sample of a finished npz dataset, shard by shard.

    Memory holds one array at a time (members are read lazily) plus one shard's manifest.
    single_file: path is one shard's .npz rather than the dataset folder.
    """
    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    shards = [root] if single_file else sorted(fs.glob(root.rstrip("/") + "/*.npz"))
    for shard in shards:
        with fs.open(shard, "rb") as f, np.load(f, allow_pickle=False) as data:
            manifest = read_manifest(data[MANIFEST_KEY])
            for row in manifest["rows"]:
                if row.get("status") == "success":
                    yield row["key"], data[row["key"]], row.get("metadata", {})
