#!/usr/bin/env bash
# EMR bootstrap action: install the spark_img2ds wheel (from `make dist`) on every node.
#   aws s3 cp dist/spark_img2ds-0.1.0-py3-none-any.whl s3://my-bucket/bootstrap/
#   aws s3 cp examples/cluster/emr_bootstrap.sh s3://my-bucket/bootstrap/
#   aws emr create-cluster ... --bootstrap-actions \
#       Path=s3://my-bucket/bootstrap/emr_bootstrap.sh,Args=[s3://my-bucket/bootstrap/spark_img2ds-0.1.0-py3-none-any.whl]
set -euo pipefail
wheel_url="$1"
aws s3 cp "$wheel_url" /tmp/
sudo python3 -m pip install --quiet "/tmp/$(basename "$wheel_url")"
