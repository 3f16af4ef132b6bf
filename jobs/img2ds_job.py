"""spark-submit entrypoint: the same flags as the spark-img2ds command.

    spark-submit --master yarn jobs/img2ds_job.py --url_list s3://b/urls.parquet \
        --input_format parquet --output_folder s3://b/ds --output_format webdataset
"""

import sys

from spark_img2ds.cli import main

if __name__ == "__main__":
    sys.exit(main())
