# Databricks notebook source
# MAGIC %md
# MAGIC # Images into a training dataset with spark_img2ds
# MAGIC
# MAGIC The notebook's own `spark` session runs the download: its settings are left as they were.
# MAGIC Install the package on the cluster (Libraries > PyPI: `spark-img2ds`, or an init script that
# MAGIC pip-installs the wheel from `make dist`) so that every executor can import it.
# MAGIC Write to object storage (`s3://`, `gs://`, `abfss://`) that both fsspec and Spark can read.

# COMMAND ----------

import os

from spark_img2ds import download

# Any DataFrame with a column of URLs: a Delta table, a parquet folder, a CSV.
URLS = os.environ.get("IMG2DS_EXAMPLE_URLS", "s3://my-bucket/lists/urls.csv")
OUTPUT = os.environ.get("IMG2DS_EXAMPLE_OUTPUT", "s3://my-bucket/datasets/demo-256")
# The tests serve the images from this machine, an address a real job never needs.
ON_THIS_MACHINE = os.environ.get("IMG2DS_EXAMPLE_LOOPBACK") == "1"

urls = spark.read.option("header", "true").csv(URLS)  # noqa: F821  (Databricks defines spark)
display(urls.limit(5))  # noqa: F821

# COMMAND ----------

summary = download(
    url_list=urls,
    spark=spark,  # noqa: F821
    url_col="url",
    caption_col="caption",
    output_folder=OUTPUT,
    output_format="webdataset",
    image_size=256,
    resize_mode="border",
    thread_count=64,
    allow_private_networks=ON_THIS_MACHINE,
)
print(summary)

# COMMAND ----------

# MAGIC %md
# MAGIC Every input row has a result row: success, or the error that a person can act on.

# COMMAND ----------

samples = summary.samples()
display(samples.groupBy("status", "error_message").count().orderBy("count", ascending=False))  # noqa: F821
display(samples.where("status = 'success'").select("key", "url", "width", "height").limit(10))  # noqa: F821
