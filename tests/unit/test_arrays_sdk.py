"""The image-to-array SDK in plain Python: every source kind, errors that never echo input, npz round trips."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np
import pytest

from spark_img2ds import (
    ConversionOptions,
    convert,
    convert_many,
    convert_result,
    decoder_capabilities,
    load_npz,
    save_npz,
    supported_formats,
)
from spark_img2ds.errors import ConversionError, NPZError, UnsupportedFormatError

SECRET_BYTES = b"SECRET-PAYLOAD-" * 20


def test_importing_the_sdk_starts_neither_spark_nor_the_jvm():
    code = (
        "import sys\n"
        "from spark_img2ds import convert, convert_many, save_npz, load_npz, ConversionOptions\n"
        "from spark_img2ds.arrays import iter_npz_dataset, supported_formats\n"
        "print(sorted(m for m in ('pyspark', 'py4j') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_every_source_kind_gives_the_same_array(image_dir):
    path = image_dir / "china.jpg"
    data = path.read_bytes()
    expected = convert(str(path))
    assert expected.shape[2] == 3 and expected.dtype == np.uint8
    for source in (path, data, bytearray(data), memoryview(data), io.BytesIO(data), f"file://{path}"):
        np.testing.assert_array_equal(convert(source), expected)
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(convert(fh), expected)


def test_a_pil_image_is_accepted_when_pillow_is_installed(image_dir):
    image_module = pytest.importorskip("PIL.Image")
    with image_module.open(image_dir / "camera.png") as img:
        assert convert(img, {"channel_mode": "auto"}).ndim == 2


def test_urls_go_through_the_downloader_and_its_policy(server, image_dir):
    url = f"{server.url}/img/china.jpg"
    np.testing.assert_array_equal(convert(url, allow_private_networks=True), convert(image_dir / "china.jpg"))
    result = convert_result(url)  # loopback is refused by default, as in the job
    assert (result.ok, result.error) == (False, "address not allowed: loopback")
    secret_url = f"http://user:pa55word@127.0.0.1:{server.server_port}/img/china.jpg?token=t0ken"
    failed = convert_result(secret_url)
    assert "pa55word" not in failed.source and "t0ken" not in failed.source


def test_urls_converted_one_after_another_share_a_kept_alive_connection(image_dir):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = (image_dir / "china.jpg").read_bytes()
    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        batch = convert_many([f"{base}/{i}.jpg" for i in range(3)], allow_private_networks=True, timeout=7)
        convert(f"{base}/again.jpg", allow_private_networks=True, timeout=7)
    finally:
        server.shutdown()
        server.server_close()
    assert batch.ok == 3 and len(ports) == 4
    assert len(set(ports)) == 1, ports  # one connection for the four downloads


def test_connect_timeout_reaches_the_sdk_downloader():
    from spark_img2ds.net.policy import CONNECT_TIMEOUT
    from tests.helpers.silent import SilentListener

    silent = SilentListener()
    start = time.monotonic()
    try:
        result = convert_result(f"{silent.url}/a.jpg", allow_private_networks=True, timeout=30, connect_timeout=0.3)
    finally:
        silent.close()
    assert (result.ok, result.error) == (False, "timed out while connecting")
    assert time.monotonic() - start < CONNECT_TIMEOUT  # the option's 0.3 s applied, not the default


def test_convert_result_describes_the_image(image_dir):
    result = convert_result(image_dir / "exif_rotated.jpg", ConversionOptions(normalize_mode="0..1", dtype="float32"))
    assert result.ok and result.format == "jpg" and result.mode == "RGB"
    assert result.original_size == (100, 200)  # displayed size, after the EXIF rotation
    assert result.shape == (200, 100, 3) and result.dtype == "float32"
    assert result.exif.get("Image Orientation", "").startswith("Rotated 90")
    assert 0.0 <= float(result.array.min()) and float(result.array.max()) <= 1.0


@pytest.mark.parametrize(
    "source",
    [SECRET_BYTES, io.BytesIO(SECRET_BYTES), b"\x89PNG\r\n\x1a\n" + SECRET_BYTES, b"\xff\xd8\xff" + SECRET_BYTES],
)
def test_errors_name_the_source_briefly_and_never_echo_it(source):
    with pytest.raises(ConversionError) as info:
        convert(source)
    assert b"SECRET" not in str(info.value).encode() and "SECRET" not in repr(info.value)
    result = convert_result(source)
    assert not result.ok and "SECRET" not in (result.error or "") + result.source


def test_unsupported_bytes_raise_the_subclass():
    with pytest.raises(UnsupportedFormatError, match=r"^bytes \(11\): not a supported image format$"):
        convert(b"hello world")


def test_convert_many_over_a_folder_a_glob_and_an_iterable(image_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("china.jpg", "camera.png"):
        (folder / name).write_bytes((image_dir / name).read_bytes())
    (folder / "notes.txt").write_text("not an image")
    batch = convert_many(folder)
    assert (batch.ok, batch.errors, batch.total) == (2, 1, 3)
    assert [r.source.rsplit("/", 1)[-1] for r in batch.results] == ["camera.png", "china.jpg", "notes.txt"]
    assert len(batch.arrays()) == 2
    assert convert_many(str(folder / "*.jpg")).total == 1
    assert convert_many([folder / "china.jpg", b"junk"]).errors == 1
    with pytest.raises(ConversionError, match="notes.txt"):
        convert_many(folder, fail_fast=True)


def test_npz_round_trips_through_numpy_without_pickle(tmp_path, image_dir):
    batch = convert_many([image_dir / "china.jpg", b"junk", image_dir / "camera.png"], {"channel_mode": "auto"})
    path = tmp_path / "out.npz"
    save_npz(batch, str(path), manifest={"dataset": "test"})
    with np.load(path, allow_pickle=False) as raw:
        assert sorted(raw.files) == ["0", "2", "__manifest_json__"]
    arrays, manifest = load_npz(str(path))
    np.testing.assert_array_equal(arrays["0"], batch.results[0].array)
    assert arrays["2"].ndim == 2  # the grey photo stays grey in auto mode
    assert manifest["dataset"] == "test" and manifest["schema_version"] == 1
    assert [r["status"] for r in manifest["rows"]] == ["success", "error", "success"]
    assert manifest["rows"][1]["error"] == "not a supported image format"


def test_save_npz_takes_a_dict_and_compresses_on_request(tmp_path):
    arrays = {"a": np.arange(1000, dtype=np.float32), "b": np.zeros((50, 50), np.uint8)}
    plain, packed = tmp_path / "p.npz", tmp_path / "c.npz"
    save_npz(arrays, str(plain))
    save_npz(arrays, str(packed), compressed=True)
    assert packed.stat().st_size < plain.stat().st_size
    back, manifest = load_npz(str(packed))
    np.testing.assert_array_equal(back["a"], arrays["a"])
    assert manifest["rows"][1] == {"key": "b", "shape": [50, 50], "dtype": "uint8"}
    save_npz(arrays, str(tmp_path / "again.npz"))
    assert (tmp_path / "again.npz").read_bytes() == plain.read_bytes()  # same arrays, same bytes


def test_a_pickle_bearing_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"x": 1}], dtype=object))
    with pytest.raises(NPZError, match="object arrays"):
        load_npz(str(path))
    with pytest.raises(NPZError, match="holds Python objects"):
        save_npz({"x": np.array([{"a": 1}], dtype=object)}, str(tmp_path / "no.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(NPZError, match="not a readable npz"):
        load_npz(str(tmp_path / "junk.npz"))


def test_capabilities_are_probed_from_the_installed_opencv():
    caps = decoder_capabilities()
    assert {"png", "jpeg", "webp", "bmp", "tiff", "gif"} <= set(caps)
    assert all(caps[f]["decode"] for f in ("png", "jpeg", "webp", "bmp", "tiff"))
    assert set(supported_formats()) == {f for f, c in caps.items() if c["decode"]}


def test_unknown_keywords_and_options_are_refused():
    with pytest.raises(TypeError, match="unknown keyword"):
        convert(b"x", time_out=3)
    with pytest.raises(ValueError, match="unknown conversion option"):
        convert(b"x", {"channels": "RGB"})


def test_streaming_a_shard_holds_one_array_at_a_time(tmp_path):
    """A shard of many 256x256x3 float32 arrays is written with memory for about one of them."""
    import tracemalloc

    from spark_img2ds.arrays.npz import NpzStream

    one = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    tracemalloc.start()
    try:
        with open(tmp_path / "shard.npz", "wb") as f:
            stream = NpzStream(f)
            for i in range(60):  # 47 MB of arrays in all
                stream.add(f"{i:05d}", one)
            stream.close({"rows": [{"key": f"{i:05d}"} for i in range(60)]})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * one.nbytes, f"peak {peak} bytes for arrays of {one.nbytes}"
    arrays, manifest = load_npz(str(tmp_path / "shard.npz"))
    assert len(arrays) == 60 and len(manifest["rows"]) == 60
