"""Image files built in the tests: EXIF-rotated JPEGs, alpha, grey, 16-bit, WebP, huge and tiny ones."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import cv2
import numpy as np

DEMO_DATA = Path(__file__).resolve().parents[2] / "spark_img2ds" / "demo" / "data"


def exif_segment(orientation: int, make: str = "spark_img2ds") -> bytes:
    """A JPEG APP1 segment with a little-endian EXIF IFD0 holding Make and Orientation."""
    text = make.encode() + b"\x00"
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 2 * 12 + 4
    ifd = struct.pack("<H", 2)
    ifd += struct.pack("<HHII", 0x010F, 2, len(text), data_offset)  # Make, ASCII
    ifd += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)  # Orientation, SHORT
    ifd += struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + text
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_exif(img: np.ndarray, orientation: int) -> bytes:
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = enc.tobytes()
    return data[:2] + exif_segment(orientation) + data[2:]


def _gradient(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    b = np.broadcast_to(x, (height, width))
    g = np.broadcast_to(y, (height, width))
    r = np.full((height, width), 128, np.float32)
    return np.stack([b, g, r], axis=2).astype(np.uint8)


def make_images(folder: Path) -> None:
    """Real image files of the kinds the web serves, beside the bundled demo photos."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in DEMO_DATA.iterdir():
        if p.suffix in (".jpg", ".png"):
            shutil.copy(p, folder / p.name)
    # 200 wide x 100 high, EXIF orientation 6: displayed rotated, 100 wide x 200 high.
    (folder / "exif_rotated.jpg").write_bytes(jpeg_with_exif(_gradient(200, 100), 6))
    rgba = np.zeros((120, 160, 4), np.uint8)
    rgba[:, :80] = (0, 0, 255, 255)  # left half opaque red, right half transparent
    cv2.imwrite(str(folder / "alpha.png"), rgba)
    cv2.imwrite(str(folder / "gray.jpg"), cv2.cvtColor(_gradient(300, 200), cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "deep.png"), (_gradient(64, 48).astype(np.uint16) * 257))
    cv2.imwrite(str(folder / "pic.webp"), _gradient(320, 240), [cv2.IMWRITE_WEBP_QUALITY, 80])
    cv2.imwrite(str(folder / "big.jpg"), _gradient(3000, 2000), [cv2.IMWRITE_JPEG_QUALITY, 50])
    cv2.imwrite(str(folder / "tiny.png"), _gradient(12, 10))
    cv2.imwrite(str(folder / "wide.jpg"), _gradient(2000, 20))
    # Incompressible: a few of these make a shard large enough for S3 multipart uploads.
    noise = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "noise.png"), noise)
