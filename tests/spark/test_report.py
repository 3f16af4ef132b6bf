"""The run report: written at the end of a run, rebuilt by `spark-img2ds report`, opened in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from spark_img2ds import download
from spark_img2ds.cli import main
from spark_img2ds.dataset.stats import ShardStats
from spark_img2ds.report.build import histogram, throughput


class Charts(HTMLParser):
    """Counts, per <svg>, the shapes it draws; collects the figure captions and any script."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[int] = []
        self.captions: list[str] = []
        self.scripts = 0
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svgs.append(0)
        elif tag in ("rect", "polyline", "polygon") and self.svgs:
            self.svgs[-1] += 1
        elif tag == "figcaption":
            self._in_caption = True
            self.captions.append("")
        elif tag in ("script", "link", "img"):
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions[-1] += data


def test_throughput_spreads_each_shard_over_its_run():
    stats = [ShardStats(0, count=100, start_time=0.0, end_time=10.0), ShardStats(1, count=50, start_time=5.0,
                                                                                 end_time=10.0)]  # fmt: skip
    xs, rates = throughput(stats, bins=2)
    assert xs == [2.5, 7.5] and rates == pytest.approx([10.0, 20.0])
    assert throughput([]) == ([], [])


def test_histogram_bins_and_labels():
    labels, counts = histogram([10, 130, 300, 5000], (0, 128, 256))
    assert (labels, counts) == (["0-128", "128-256", "256+"], [1, 1, 2])


def test_the_report_renders_in_chromium(spark, server, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: `make test` installs Debian's chromium package")
    url_list = tmp_path / "urls.txt"
    names = ["china.jpg", "coffee.jpg", "pic.webp", "big.jpg", "wide.jpg", "tiny.png"]
    url_list.write_text("".join(f"{server.url}/img/{n}?r={i}\n" for i in range(4) for n in names)
                        + f"{server.url}/status/404\n{server.url}/notimage\n")  # fmt: skip
    out = tmp_path / "out"
    download(str(url_list), spark=spark, output_folder=str(out), output_format="webdataset", image_size=64,
             number_sample_per_shard=6, thread_count=4, allow_private_networks=True)  # fmt: skip
    report = out / "_report.html"
    assert report.exists()
    report.unlink()
    assert main(["report", str(out)]) == 0  # rebuilt from the files alone
    page = report.read_text()
    for text in ("Throughput over time", "HTTP 404 Not Found", "Shard durations", "&quot;image_size&quot;: 64"):
        assert text in page

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    url = report.as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    charts = Charts()
    charts.feed(dom.stdout)
    assert len(charts.svgs) >= 6 and all(n > 0 for n in charts.svgs), charts.svgs  # every chart draws something
    assert charts.scripts == 0  # self-contained: nothing to fetch, nothing to run
    assert any("Aspect ratio" in c for c in charts.captions)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=800,2600", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
