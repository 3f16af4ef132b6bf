#!/usr/bin/env bash
# Install spark_img2ds and its pinned dependencies into a new virtualenv.
# The Docker image runs this step; the tests run the same script in a plain virtualenv.
#   docker/install.sh PYTHON VENV SOURCE     e.g. docker/install.sh python3.11 /opt/venv /opt/spark_img2ds
set -euo pipefail
python="$1"
venv="$2"
src="$3"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -c "$src/constraints.txt" "$src"
"$venv/bin/python" -c "import cv2, pyarrow, spark_img2ds; print('spark_img2ds', spark_img2ds.__version__)"
