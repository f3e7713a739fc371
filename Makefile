# The README's quick start: `make run` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/pressmon.yaml
# Test processes (pytest-xdist): most tests wait on servers, daemons and subprocesses, so two
# run the suite in ~4 minutes instead of ~6-8 on a 2-core machine. TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2

.PHONY: setup run demo check test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ner,bench]'
	touch $@

run: setup
	$(BIN)/pressmon run --config $(CONFIG)

demo: setup
	$(BIN)/pressmon demo

check: setup
	$(BIN)/pressmon check --config $(CONFIG)

test: setup
	$(BIN)/ruff check monitor tests bench migrations
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# The benchmarks of the README (bench/ingest.py also runs `reader`: the bench extra).
bench: setup
	$(BIN)/python bench/match.py
	$(BIN)/python bench/ingest.py

lint: setup
	$(BIN)/ruff check monitor tests bench migrations

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
