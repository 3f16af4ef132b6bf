"""`python -m spark_img2ds.demo` (what `make demo` runs)."""

import sys

from spark_img2ds.demo.runner import main

sys.exit(main())
