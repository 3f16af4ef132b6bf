"""bbox_col through download(): the box region really changes, the rest does not, malformed boxes fail clearly."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spark_img2ds import download, load_npz
from tests.helpers.e2e import read_metadata, read_tars


def test_boxes_from_a_parquet_list_column_are_blurred(spark, server, tmp_path):
    url = f"{server.url}/img/astronaut.jpg"
    table = pa.table(
        {
            "url": [url, url + "?plain", url + "?bad"],
            "boxes": pa.array([[[0.0, 0.0, 0.5, 0.5]], None, [[0.6, 0.1, 0.2, 0.9]]], pa.list_(pa.list_(pa.float64()))),
        }
    )
    pq.write_table(table, tmp_path / "urls.parquet")
    out = tmp_path / "out"
    download(str(tmp_path / "urls.parquet"), spark=spark, input_format="parquet", output_folder=str(out),
             output_format="webdataset", image_size=128, encode_format="png", encode_quality=1, thread_count=4,
             timeout=5, allow_private_networks=True, bbox_col="boxes")  # fmt: skip
    meta = {r["url"]: r for r in read_metadata(str(out))}
    bad = meta[url + "?bad"]
    assert (bad["status"], bad["error_message"]) == (
        "failed_to_resize",
        "bbox must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (relative to the image)",
    )
    images = {json.loads(files["json"])["url"]: files["png"] for files in read_tars(str(out)).values()}
    blurred = cv2.imdecode(np.frombuffer(images[url], np.uint8), cv2.IMREAD_COLOR).astype(int)
    plain = cv2.imdecode(np.frombuffer(images[url + "?plain"], np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert np.abs(blurred[8:56, 8:56] - plain[8:56, 8:56]).mean() > 3  # inside the box: changed
    assert np.array_equal(blurred[80:, 80:], plain[80:, 80:])  # the far corner: the same pixels


def test_boxes_are_blurred_in_npz_arrays_too(spark, server, tmp_path):
    url = f"{server.url}/img/astronaut.jpg"
    boxes = pa.array([[[0.0, 0.0, 0.5, 0.5]], None], pa.list_(pa.list_(pa.float64())))
    pq.write_table(pa.table({"url": [url, url + "?plain"], "boxes": boxes}), tmp_path / "urls.parquet")
    out = tmp_path / "out"
    download(str(tmp_path / "urls.parquet"), spark=spark, input_format="parquet", output_folder=str(out),
             output_format="npz", image_size=128, thread_count=4, timeout=5, allow_private_networks=True,
             bbox_col="boxes")  # fmt: skip
    keys = {r["url"]: r["key"] for r in read_metadata(str(out))}
    arrays, _ = load_npz(str(out / "00000.npz"))
    blurred, plain = (arrays[keys[u]].astype(int) for u in (url, url + "?plain"))
    assert np.abs(blurred[8:56, 8:56] - plain[8:56, 8:56]).mean() > 3
    assert np.array_equal(blurred[80:, 80:], plain[80:, 80:])
