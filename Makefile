# spark_img2ds: `make demo` runs the job on bundled images; `make test` runs the suite.
# Everything is installed into a virtualenv (.venv) from PyPI; Java 17 must be present.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-unit lint venv java clean bench dist browser

java:
	@if [ -n "$$JAVA_HOME" ] && [ -x "$$JAVA_HOME/bin/java" ]; then exit 0; fi; \
	command -v java >/dev/null 2>&1 || { echo "error: Java was not found: Spark needs Java 17 (install a JDK 17 or set JAVA_HOME)" >&2; exit 1; }

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# Spark's classes as a JVM class archive: local sessions start ~2-3 s sooner (spark_img2ds/tuning/jvm_cache.py).
# Checked on every use, not only at install: the shared cache keeps a few archives and may have pruned ours.
venv: $(STAMP)
	@$(PY) -m spark_img2ds.demo.jvm_archive --if-missing --quiet || echo "warning: no JVM class archive; Spark starts slower" >&2

demo: java venv
	$(PY) -m spark_img2ds.demo

# Side-by-side benchmark against img2dataset (bench/README.md); e.g. make bench BENCH_ARGS=--quick
bench: java venv
	$(PY) -m bench.run_bench $(BENCH_ARGS)

lint: venv
	$(PY) -m ruff check .

# Debian's Chromium, for the test that opens the run report as a person would (needs root or sudo-less apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	|| { echo "error: chromium is missing and could not be installed (apt-get install chromium)" >&2; exit 1; }

test: java venv lint browser
	$(PY) -m pytest

# The quick loop: no Spark, no JVM (tests/spark and tests/cluster need them).
test-unit: venv
	$(PY) -m pytest tests/unit

# What a cluster needs (tools/make_dist.py): the wheel, the --py-files zip and a packed virtualenv.
dist: venv
	$(PY) -m pip install --quiet -c constraints.txt venv-pack
	$(PY) tools/make_dist.py --out dist

clean:
	rm -rf dist $(VENV) demo_output demo_output_urls.csv .pytest_cache
