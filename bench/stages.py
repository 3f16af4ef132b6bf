"""Per-image CPU cost of each pipeline stage, measured in isolation, and the compute ceiling.

Each stage runs single-threaded over a sample of corpus images with the libraries
the job uses (requests, urllib3 or a plain keep-alive socket for the GET, OpenCV for decode/resize/encode,
hashlib, exifread, tarfile + json + pyarrow for the write) and is timed with
``time.process_time``. The ceiling is the rate a perfect pipeline made of exactly
those pieces would reach on all cores: ``cores / sum(stage costs)``.

These are measured here rather than by calling spark_img2ds's internals, so they
stay comparable while the package changes; ``job_pipeline`` says which of the
measured variants the job's own pipeline is.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bench.corpus import Corpus

REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
# The stages the ceiling is made of; "exif" is measured and shown but is not part of it.
CEILING_STAGES = ("fetch", "decode", "resize", "encode", "hash", "write")


def reduction_factor(width: int, height: int, image_size: int, gap: float = 1.0) -> int:
    """Largest JPEG DCT reduction (8, 4, 2) that keeps the longest side >= gap x image_size; 1 if none."""
    longest = max(width, height)
    for factor in (8, 4, 2):
        if math.ceil(longest / factor) >= gap * image_size:
            return factor
    return 1


def ceiling(costs: dict[str, float], cores: int) -> float:
    """Images/s of a perfect pipeline on `cores` cores: cores / total CPU seconds per image."""
    total = sum(costs.values())
    return cores / total if total > 0 else float("inf")


def job_pipeline() -> dict[str, str]:
    """The pieces the job's image path is made of, as the ceiling models them.

    The job's GET is its lean HTTP/1.1 client on a kept-alive socket ("socket" here), it
    decodes JPEGs at a reduced scale that keeps twice the target (decode_gap; 1 with fast_decode), and it
    shrinks by less
    than 2x bilinearly when fast_downscale is on (its default, read from the package).
    """
    from spark_img2ds.imaging.options import DEFAULT_IMAGE_OPTIONS
    from spark_img2ds.imaging.resize import REDUCING_GAP

    return {
        "decode": "reduced",
        "decode_gap": 1.0 if DEFAULT_IMAGE_OPTIONS.fast_decode else REDUCING_GAP,
        "fetch": "socket",
        "resize": "fast" if DEFAULT_IMAGE_OPTIONS.fast_downscale else "area",
    }


def _timed(fn: Callable[[], None], reps: int) -> float:
    """The smallest process CPU time of reps calls (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _decode_full(data: bytes, fmt: str) -> np.ndarray:
    """As the job does: IMREAD_COLOR for JPEG (applies EXIF orientation), else unchanged then BGR."""
    buf = np.frombuffer(data, np.uint8)
    if fmt == "jpg":
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def _decode_reduced(data: bytes, fmt: str, factor: int) -> np.ndarray:
    if fmt != "jpg" or factor == 1:
        return _decode_full(data, fmt)
    return cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED_FLAGS[factor])


def resize_border(img: np.ndarray, size: int, fast: bool = False) -> np.ndarray:
    """Longest side to size (area when shrinking, lanczos when enlarging), then white padding.

    fast: shrinking by less than 2x is bilinear, as spark_img2ds's fast_downscale does.
    """
    h, w = img.shape[:2]
    scale = size / max(w, h)
    if scale != 1.0:
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        inter = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
        if fast and 0.5 < scale < 1:
            inter = cv2.INTER_LINEAR
        img = cv2.resize(img, new, interpolation=inter)
    h, w = img.shape[:2]
    if w < size or h < size:
        top, left = (size - h) // 2, (size - w) // 2
        img = cv2.copyMakeBorder(
            img, top, size - h - top, left, size - w - left, cv2.BORDER_CONSTANT, value=(255, 255, 255)
        )
    return img


def _fetch_requests(urls: list[str]) -> Callable[[], None]:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0))
    session.trust_env = False

    def run() -> None:
        for url in urls:
            resp = session.get(url, timeout=(10, 10), stream=True)
            parts = []
            while True:
                chunk = resp.raw.read1(1 << 16, decode_content=True)
                if not chunk:
                    break
                parts.append(chunk)
            resp.close()
            if resp.status_code != 200 or not parts:
                raise RuntimeError(f"GET {url}: HTTP {resp.status_code}")

    return run


def _fetch_urllib3(urls: list[str]) -> Callable[[], None]:
    import urllib3

    pool = urllib3.PoolManager(maxsize=4, retries=False, timeout=urllib3.Timeout(10, 10))

    def run() -> None:
        for url in urls:
            resp = pool.request("GET", url, preload_content=True)
            if resp.status != 200 or not resp.data:
                raise RuntimeError(f"GET {url}: HTTP {resp.status}")

    return run


def _fetch_socket(urls: list[str]) -> Callable[[], None]:
    """The floor of a Python GET: one keep-alive socket, the head split at its blank line,
    Content-Length read, the body received into one buffer. No checks beyond the status."""
    import socket
    from urllib.parse import urlsplit

    first = urlsplit(urls[0])
    host, port = first.hostname, first.port or 80
    requests_ = [
        f"GET {urlsplit(u).path} HTTP/1.1\r\nHost: {first.netloc}\r\nUser-Agent: bench\r\n"
        f"Accept-Encoding: gzip, deflate\r\nAccept: */*\r\n\r\n".encode()
        for u in urls
    ]

    def run() -> None:
        sock = socket.create_connection((host, port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            for req in requests_:
                sock.sendall(req)
                while (end := buf.find(b"\r\n\r\n")) < 0:
                    buf += sock.recv(1 << 16)
                head, buf = buf[:end], buf[end + 4 :]
                lines = head.split(b"\r\n")
                if lines[0].split()[1] != b"200":
                    raise RuntimeError(f"GET: {lines[0]!r}")
                length = next(
                    int(v) for k, _, v in (x.partition(b":") for x in lines[1:]) if k.lower() == b"content-length"
                )
                body = bytearray(length)
                view = memoryview(body)
                have = min(len(buf), length)
                view[:have], buf = buf[:have], buf[have:]
                while have < length:
                    have += sock.recv_into(view[have:])
                bytes(body)
        finally:
            sock.close()

    return run


def _exif_cost(datas: list[bytes]) -> Callable[[], None]:
    try:
        import exifread
    except ImportError:
        return lambda: None

    def run() -> None:
        for data in datas:
            if b"Exif\x00\x00" in data[:65536]:  # the job parses only files that carry a block
                tags = exifread.process_file(io.BytesIO(data), details=False)
                json.dumps({k: str(v) for k, v in tags.items()})

    return run


def _write_cost(outputs: list[bytes], urls: list[str], work: Path) -> Callable[[], None]:
    """Per sample: metadata dict -> JSON, two tar members, a parquet row (row groups of 1024)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    work.mkdir(parents=True, exist_ok=True)

    def member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))

    def run() -> None:
        rows: list[dict] = []
        with open(work / "stage.tar", "wb") as raw, open(work / "stage.parquet", "wb") as meta_file:
            tar = tarfile.open(fileobj=raw, mode="w|", format=tarfile.USTAR_FORMAT)
            writer = None
            for i, (out, url) in enumerate(zip(outputs, urls, strict=True)):
                key = f"{i:09d}"
                meta = {
                    "url": url,
                    "key": key,
                    "status": "success",
                    "error_message": None,
                    "width": 256,
                    "height": 256,
                    "original_width": 500,
                    "original_height": 400,
                    "exif": "{}",
                    "sha256": "0" * 64,
                }
                member(tar, f"{key}.jpg", out)
                member(tar, f"{key}.json", json.dumps(meta).encode())
                rows.append(meta)
                if len(rows) >= 1024:
                    table = pa.Table.from_pylist(rows)
                    writer = writer or pq.ParquetWriter(meta_file, table.schema, compression="snappy")
                    writer.write_table(table)
                    rows = []
            if rows:
                table = pa.Table.from_pylist(rows)
                writer = writer or pq.ParquetWriter(meta_file, table.schema, compression="snappy")
                writer.write_table(table)
            if writer is not None:
                writer.close()
            tar.close()

    return run


def measure(
    corpus: Corpus,
    prefix: str,
    sample: int,
    image_size: int,
    work: Path,
    seed: int = 0,
    reps: int = 3,
    gap: float = 1.0,
) -> dict:
    """CPU seconds per image of every stage (full and reduced decode), over `sample` corpus images."""
    cv2.setNumThreads(1)
    rng = random.Random(seed)
    entries = rng.sample(corpus.entries, min(sample, len(corpus.entries)))
    datas = [(corpus.images / e["file"]).read_bytes() for e in entries]
    fmts = [e["format"] for e in entries]
    factors = [
        reduction_factor(e["width"], e["height"], image_size, gap) if e["format"] == "jpg" else 1 for e in entries
    ]
    urls = [f"{prefix.rstrip('/')}/r0/{e['file']}" for e in entries]
    n = len(entries)

    fetch_requests, fetch_urllib3, fetch_socket = _fetch_requests(urls), _fetch_urllib3(urls), _fetch_socket(urls)
    fetch_requests()  # warm up: connections, page cache
    fetch_urllib3()
    fetch_socket()
    wall = time.perf_counter()
    cpu = {"fetch_requests": _timed(fetch_requests, reps)}
    wall_get_ms = (time.perf_counter() - wall) / reps / n * 1000
    cpu["fetch_urllib3"] = _timed(fetch_urllib3, reps)
    cpu["fetch_socket"] = _timed(fetch_socket, reps)

    full = [_decode_full(d, f) for d, f in zip(datas, fmts, strict=True)]
    reduced = [_decode_reduced(d, f, k) for d, f, k in zip(datas, fmts, factors, strict=True)]
    cpu["decode_full"] = _timed(lambda: [_decode_full(d, f) for d, f in zip(datas, fmts, strict=True)], reps)
    cpu["decode_reduced"] = _timed(
        lambda: [_decode_reduced(d, f, k) for d, f, k in zip(datas, fmts, factors, strict=True)], reps
    )
    cpu["resize_full"] = _timed(lambda: [resize_border(im, image_size) for im in full], reps)
    cpu["resize_reduced"] = _timed(lambda: [resize_border(im, image_size) for im in reduced], reps)
    cpu["resize_full_fast"] = _timed(lambda: [resize_border(im, image_size, True) for im in full], reps)
    cpu["resize_reduced_fast"] = _timed(lambda: [resize_border(im, image_size, True) for im in reduced], reps)
    resized = [resize_border(im, image_size) for im in full]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    cpu["encode"] = _timed(lambda: [cv2.imencode(".jpg", im, params) for im in resized], reps)
    outputs = [cv2.imencode(".jpg", im, params)[1].tobytes() for im in resized]
    cpu["hash"] = _timed(lambda: [hashlib.sha256(d).hexdigest() for d in datas], reps)
    cpu["exif"] = _timed(_exif_cost(datas), reps)
    cpu["write"] = _timed(_write_cost(outputs, urls, work), reps)
    for name in ("stage.tar", "stage.parquet"):
        (work / name).unlink(missing_ok=True)

    per_image = {k: v / n for k, v in cpu.items()}
    jpgs = sum(f == "jpg" for f in fmts)
    return {
        "sample_images": n,
        "cpu_s_per_image": per_image,
        "get_wall_ms": round(wall_get_ms, 3),
        "reduction_factors": {str(k): factors.count(k) for k in (1, 2, 4, 8)},
        "jpg_share": round(jpgs / n, 3),
        "mean_input_bytes": round(sum(len(d) for d in datas) / n),
    }


def pipeline(per_image: dict[str, float], decode: str, fetch: str, resize: str = "area") -> dict[str, float]:
    """The ceiling's stage costs for one decode mode ('full'/'reduced'), fetch library and resize ('area'/'fast')."""
    return {
        "fetch": per_image[f"fetch_{fetch}"],
        "decode": per_image[f"decode_{decode}"],
        "resize": per_image[f"resize_{decode}" + ("_fast" if resize == "fast" else "")],
        "encode": per_image["encode"],
        "hash": per_image["hash"],
        "write": per_image["write"],
    }


def ceilings(per_image: dict[str, float], cores: int, fetch: str, resize: str = "area") -> dict[str, float]:
    """Ceiling images/s with full and with reduced JPEG decoding."""
    return {mode: ceiling(pipeline(per_image, mode, fetch, resize), cores) for mode in ("full", "reduced")}
