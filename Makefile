# Two commands: `make demo` and `make test`. Each creates .venv when missing and installs
# the package (editable) with its test extras; the stamp re-installs when pyproject changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/upliftlab
STAMP  := $(VENV)/.installed
DEMO   ?= reports/demo

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	@bash scripts/demo.sh $(CLI) $(DEMO)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO) .pytest_cache
