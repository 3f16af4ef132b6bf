"""Shared fixtures: a real SparkSession, a real HTTP image server, a real S3 endpoint."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from spark_img2ds.demo.server import SampleServer
from spark_img2ds.driver.session import WORKER_DAEMON, local_java_options
from tests.helpers.images import make_images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    make_images(folder)
    return folder


@pytest.fixture(scope="session")
def server(image_dir):
    with SampleServer(image_dir) as srv:
        yield srv


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("spark_img2ds-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.extraJavaOptions", local_java_options())
        .config("spark.python.daemon.module", WORKER_DAEMON)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on 127.0.0.1 and the storage_options that reach it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    motoserver = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    motoserver.start()
    endpoint = f"http://127.0.0.1:{port}"
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
    yield {"endpoint": endpoint, "storage_options": options}
    motoserver.stop()


@pytest.fixture
def bucket(s3, request):
    """A fresh bucket for one test; its s3:// URL."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3["storage_options"])
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    fs.mkdir(name)
    yield f"s3://{name}"
    fs.rm(name, recursive=True)
