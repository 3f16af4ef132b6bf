"""Credentials in every place a user may put them never reach logs, stats, the summary or error messages."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from spark_img2ds import download
from tests.helpers.e2e import write_csv
from tests.helpers.proxy import ForwardProxy

SECRETS = {
    "storage": "FAKE-storage-SECRET-1",
    "proxy": "FAKE-proxy-SECRET-2",
    "userinfo": "FAKE-userinfo-SECRET-3",
    "signature": "FAKE-signature-SECRET-4",
    "token": "FAKE-token-SECRET-5",
    "environment": "FAKE-environment-SECRET-6",
}
IN_URLS = ("userinfo", "signature", "token")  # input URLs are data: kept in the url column, nowhere else


def texts_outside_the_url_column(root: Path) -> dict[str, str]:
    """Every output file as text, with the url column of the metadata (and of each sample's JSON) left out."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = str(path.relative_to(root))
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            out[name] = json.dumps(table.drop_columns(["url"]).to_pylist(), default=str)
        elif path.suffix == ".tar":
            parts = []
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    data = tar.extractfile(member).read()
                    if member.name.endswith(".json"):
                        data = json.dumps({k: v for k, v in json.loads(data).items() if k != "url"}).encode()
                    parts.append(member.name + "\n" + data.decode("latin-1"))
            out[name] = "\n".join(parts)
        else:
            out[name] = path.read_bytes().decode("latin-1")
    return out


def test_no_secret_reaches_an_output_file_a_log_line_or_an_error(spark, server, tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["environment"])
    port = server.server_port
    urls = [
        f"http://img2ds:{SECRETS['userinfo']}@localhost:{port}/img/china.jpg",
        f"{server.url}/img/coffee.jpg?X-Amz-Signature={SECRETS['signature']}&X-Amz-Credential=AKIA%2F1&i=1",
        f"{server.url}/status/403?token={SECRETS['token']}",
        f"http://localhost:{port}/status/500?sig={SECRETS['signature']}",
        f"file:///etc/passwd?token={SECRETS['token']}",
    ]
    url_list = write_csv(tmp_path / "urls.csv", [{"url": u} for u in urls], ["url"])
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG, logger="spark_img2ds")
    with ForwardProxy(credentials=f"img2ds:{SECRETS['proxy']}") as proxy:
        summary = download(
            str(url_list),
            spark=spark,
            input_format="csv",
            output_folder=str(out),
            output_format="webdataset",
            image_size=64,
            thread_count=4,
            timeout=5,
            allow_private_networks=True,
            proxy=proxy.url.replace("http://", f"http://img2ds:{SECRETS['proxy']}@"),
            storage_options={"secret": SECRETS["storage"], "client_kwargs": {"token": SECRETS["storage"]}},
        )
    assert summary.count == len(urls)
    assert summary.successes == 2  # through the proxy, with its credentials
    assert len(proxy.requests) == 4  # every http(s) row went through it; file: never left

    files = texts_outside_the_url_column(out)
    assert "_summary.json" in files and any(n.endswith("_stats.json") for n in files)
    logged = caplog.text + capfd.readouterr().err + str(summary)
    for where, secret in SECRETS.items():
        leaks = [name for name, text in files.items() if secret in text]
        assert leaks == [], f"{where} secret found in {leaks}"
        assert secret not in logged, f"{where} secret found in the log"
    config = json.loads(files["_summary.json"])["config"]
    assert config["proxy"] == proxy.url.replace("http://", "http://***@")
    assert config["storage_options"] == {"secret": "***", "client_kwargs": {"token": "***"}}

    metadata = pq.read_table(next(out.glob("*.parquet"))).to_pylist()
    assert sorted(r["url"] for r in metadata) == sorted(urls)  # the input URLs themselves, as given
    with tarfile.open(next(out.glob("*.tar"))) as tar:
        kept = [json.loads(tar.extractfile(m).read())["url"] for m in tar.getmembers() if m.name.endswith(".json")]
    assert sorted(kept) == sorted(urls[:2])
    assert all(isinstance(r["error_message"], str) for r in metadata if r["status"] != "success")
