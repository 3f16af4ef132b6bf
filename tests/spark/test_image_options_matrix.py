"""resize_mode x resize_only_if_bigger x skip_reencode x encode_format, through download() and the sample server.

The expected sizes are worked out here from the options' meaning, not from imaging/.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spark_img2ds import download
from spark_img2ds.imaging.options import ENCODE_FORMATS, RESIZE_MODES
from tests.helpers.e2e import read_metadata

SIZE = 128
SOURCES = ["china.jpg", "tiny.png", "pic.webp"]  # larger than SIZE, smaller, larger
MAGIC = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG", "webp": b"RIFF"}


def expected_size(width: int, height: int, mode: str, only_if_bigger: bool) -> tuple[tuple[int, int], bool]:
    """((width, height) stored, whether the image is resized at all)."""
    if mode == "no":
        return (width, height), False
    side = min(width, height) if mode in ("keep_ratio", "center_crop") else max(width, height)
    if only_if_bigger and side <= SIZE:
        return (width, height), False
    if mode in ("center_crop", "border"):
        return (SIZE, SIZE), True
    scale = SIZE / side
    return (round(width * scale), round(height * scale)), True


@pytest.mark.parametrize("encode_format", ENCODE_FORMATS)
@pytest.mark.parametrize("skip_reencode", [False, True])
@pytest.mark.parametrize("only_if_bigger", [False, True])
@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_image_options_end_to_end(spark, server, image_dir, tmp_path, mode, only_if_bigger, skip_reencode,
                                  encode_format):  # fmt: skip
    url_list = tmp_path / "urls.txt"
    url_list.write_text("".join(f"{server.url}/img/{name}\n" for name in SOURCES))
    out = tmp_path / "out"
    summary = download(str(url_list), spark=spark, output_folder=str(out), output_format="files",
                       image_size=SIZE, resize_mode=mode, resize_only_if_bigger=only_if_bigger,
                       skip_reencode=skip_reencode, encode_format=encode_format, thread_count=3, timeout=5,
                       encode_quality=9 if encode_format == "png" else 95,
                       allow_private_networks=True)  # fmt: skip
    assert summary.successes == len(SOURCES)
    rows = sorted(read_metadata(str(out)), key=lambda r: r["key"])
    for name, row in zip(SOURCES, rows, strict=True):
        source = (image_dir / name).read_bytes()
        src = cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_COLOR)
        (width, height), resized = expected_size(src.shape[1], src.shape[0], mode, only_if_bigger)
        stored = (out / "00000" / f"{row['key']}.{encode_format}").read_bytes()
        image = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
        assert abs(image.shape[1] - width) <= 1 and abs(image.shape[0] - height) <= 1, (name, image.shape)
        assert (row["width"], row["height"]) == (image.shape[1], image.shape[0])
        assert (row["original_width"], row["original_height"]) == (src.shape[1], src.shape[0])
        if skip_reencode and not resized and name.endswith(encode_format):
            assert stored == source, name  # kept as downloaded
        else:
            assert stored.startswith(MAGIC[encode_format]) and stored != source, name
