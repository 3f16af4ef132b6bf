#!/usr/bin/env bash
# Dataproc initialization action: install the spark_img2ds wheel (from `make dist`) on every node.
#   gsutil cp dist/spark_img2ds-0.1.0-py3-none-any.whl examples/cluster/dataproc_init.sh gs://my-bucket/init/
#   gcloud dataproc clusters create img2ds --region europe-west4 \
#       --initialization-actions gs://my-bucket/init/dataproc_init.sh \
#       --metadata img2ds-wheel=gs://my-bucket/init/spark_img2ds-0.1.0-py3-none-any.whl
set -euo pipefail
wheel_url="$(/usr/share/google/get_metadata_value attributes/img2ds-wheel)"
gsutil cp "$wheel_url" /tmp/
/opt/conda/default/bin/python -m pip install --quiet "/tmp/$(basename "$wheel_url")"
