"""The example notebooks, executed: the Databricks source file on the test session, the Jupyter one in a kernel."""

from __future__ import annotations

import runpy
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from spark_img2ds import download
from tests.helpers.e2e import read_metadata, write_csv

NOTEBOOKS = Path(__file__).resolve().parents[2] / "examples" / "notebooks"


def _urls(tmp_path, server) -> Path:
    rows = [{"url": f"{server.url}/img/{n}", "caption": n} for n in ("china.jpg", "camera.png", "pic.webp")]
    rows.append({"url": f"{server.url}/status/404", "caption": "gone"})
    return write_csv(tmp_path / "urls.csv", rows, ["url", "caption"])


def test_download_on_a_users_session_leaves_it_running_and_as_it_was(spark, server, tmp_path):
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1234567")
    before = {k: spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.files.maxPartitionBytes")}
    try:
        df = spark.read.option("header", "true").csv(str(_urls(tmp_path, server)))
        summary = download(url_list=df, spark=spark, caption_col="caption", output_folder=str(tmp_path / "out"),
                           output_format="parquet", image_size=32, allow_private_networks=True)  # fmt: skip
        after = {k: spark.conf.get(k) for k in before}
        assert after == before and spark.range(5).count() == 5
        samples = summary.samples()
        assert "jpg" not in samples.columns  # the image bytes of the parquet format are left out
        assert {"key", "url", "caption", "status", "error_message", "width", "height", "sha256"} <= set(samples.columns)
        got = {r["url"].rsplit("/", 1)[-1]: (r["status"], r["width"]) for r in samples.collect()}
        assert got == {"china.jpg": ("success", 32), "camera.png": ("success", 32), "pic.webp": ("success", 32),
                       "404": ("failed_to_download", None)}  # fmt: skip
    finally:
        spark.conf.unset("spark.sql.shuffle.partitions")
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_the_databricks_notebook_runs_on_a_session_as_databricks_gives_one(spark, server, tmp_path, monkeypatch):
    out = tmp_path / "dbx"
    monkeypatch.setenv("IMG2DS_EXAMPLE_URLS", str(_urls(tmp_path, server)))
    monkeypatch.setenv("IMG2DS_EXAMPLE_OUTPUT", str(out))
    monkeypatch.setenv("IMG2DS_EXAMPLE_LOOPBACK", "1")
    shown = []
    given = {"spark": spark, "display": lambda df: shown.append(df.collect())}  # what Databricks defines
    result = runpy.run_path(str(NOTEBOOKS / "databricks_download.py"), init_globals=given)
    assert result["summary"].successes == 3 and len(shown) == 3
    assert sorted(r["status"] for r in read_metadata(str(out))) == ["failed_to_download"] + ["success"] * 3
    assert (out / "00000.tar").exists()


def test_the_jupyter_notebook_runs_in_a_kernel(server, tmp_path, monkeypatch):
    out = tmp_path / "nb"
    monkeypatch.setenv("IMG2DS_EXAMPLE_URLS", str(_urls(tmp_path, server)))
    monkeypatch.setenv("IMG2DS_EXAMPLE_OUTPUT", str(out))
    monkeypatch.setenv("IMG2DS_EXAMPLE_LOOPBACK", "1")
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)  # the notebook sets what a kernel needs itself
    nb = nbformat.read(NOTEBOOKS / "download_in_jupyter.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "session unchanged" in text and "failed_to_download" in text
    assert sorted(r["status"] for r in read_metadata(str(out))) == ["failed_to_download"] + ["success"] * 3
