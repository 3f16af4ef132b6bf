"""`make demo`: serve the bundled images locally and run the real job on them.

Writes a webdataset to ./demo_output (or the folder given) and prints its summary.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from spark_img2ds.demo.server import SampleServer

DATA = Path(__file__).with_name("data")


def write_url_list(path: Path, base_url: str, copies: int) -> int:
    """A CSV of url,caption: every bundled image under several URLs, plus a few broken ones."""
    images = sorted(p.name for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))
    rows = []
    for copy in range(copies):
        for name in images:
            rows.append((f"{base_url}/img/{name}?copy={copy}", f"{Path(name).stem.replace('_', ' ')} #{copy}"))
    rows += [
        (f"{base_url}/status/404", "a missing image"),
        (f"{base_url}/notimage", "a web page, not an image"),
        (f"{base_url}/robots/noai/{images[0]}", "an image whose site opts out of AI training"),
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["url", "caption"])
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark-img2ds-demo", description=__doc__)
    parser.add_argument("--output", default="demo_output", help="dataset folder (default: ./demo_output)")
    parser.add_argument("--copies", type=int, default=20, help="how many URLs per bundled image")
    args = parser.parse_args(argv)

    from spark_img2ds import download
    from spark_img2ds.errors import Img2dsError

    out = Path(args.output).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    url_list = out.parent / f"{out.name}_urls.csv"
    with SampleServer(DATA) as server:
        rows = write_url_list(url_list, server.url, args.copies)
        print(f"serving {DATA} at {server.url}; {rows} URLs in {url_list}", flush=True)
        try:
            summary = download(
                url_list=str(url_list),
                input_format="csv",
                url_col="url",
                caption_col="caption",
                output_folder=str(out),
                output_format="webdataset",
                image_size=256,
                resize_mode="border",
                number_sample_per_shard=100,
                processes_count=os.cpu_count() or 2,
                thread_count=16,
                timeout=5,
                incremental_mode="overwrite",
                allow_private_networks=True,
            )
        except Img2dsError as err:
            print(f"demo: error: {err}", file=sys.stderr)
            return 2
    print()
    print(summary)
    print(f"\nThe dataset is in {out}: {', '.join(sorted(os.listdir(out))[:6])} ...")
    return 0 if summary.complete else 1
