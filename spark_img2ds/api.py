"""The public entry points: ``download()`` with img2dataset's keyword names, and ``run()`` for a built Config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spark_img2ds.config import Config
from spark_img2ds.driver.job import run
from spark_img2ds.driver.summary import Summary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["Summary", "download", "run"]


def download(url_list: Any = None, spark: SparkSession | None = None, **options: Any) -> Summary:
    """Download url_list (a path, a folder, or a Spark DataFrame) into a dataset; options are img2dataset's.

    With retry_failed_from=OUT and no url_list, the failed rows of the dataset OUT are downloaded again.
    """
    return run(Config.from_dict({"url_list": url_list, **options}), spark)
