# Two commands: `make demo` and `make test`. Each creates .venv when missing and installs
# the package (editable) with its test extras; the stamp re-installs when pyproject changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/upliftlab
STAMP  := $(VENV)/.installed
DEMO   ?= reports/demo

.PHONY: demo test bench clean browser java

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP) browser java
	$(PY) -m pytest -q

# the programme report's browser test needs Chromium: the Debian package, installed only when
# missing and apt-get can (else the test is skipped and says why)
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
	   (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium \
	    >/dev/null 2>&1)); } || echo "chromium not installed: the browser test will be skipped"

# the Spark tests (local mode) need a Java runtime (>= 17): Debian's, installed only when `java` is
# missing and apt-get can (else the Spark tests are skipped and say why)
java:
	@command -v java >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends \
	  openjdk-17-jre-headless >/dev/null 2>&1; } || echo "java not installed: the Spark tests will be skipped"

demo: $(STAMP)
	@bash scripts/demo.sh $(CLI) $(DEMO)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO) .pytest_cache
