"""spark_img2ds: turn image URL lists into training datasets with Spark.

from spark_img2ds import download
download(url_list="urls.txt", output_folder="s3://bucket/ds", output_format="webdataset")
"""

__version__ = "0.1.0"

from spark_img2ds.config import Config  # noqa: E402
from spark_img2ds.errors import ConfigError, Img2dsError, InputError  # noqa: E402
from spark_img2ds.job import Summary, download, run  # noqa: E402

__all__ = ["Config", "ConfigError", "Img2dsError", "InputError", "Summary", "download", "run", "__version__"]
