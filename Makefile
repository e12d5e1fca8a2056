# Vigil Relay: the commands a newcomer needs.  `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install serve test lint format bench clean

help:
	@echo "make serve   set up, then run the relay on http://127.0.0.1:8000 (creates user 'demo')"
	@echo "make test    set up, then run ruff, mypy and the test suite"
	@echo "make lint    ruff and mypy only"
	@echo "make format  format the code with ruff"
	@echo "make bench   run the benchmark suite against a fresh relay and the Node peer (BENCH_ARGS=--smoke for a quick one)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	@$(BIN)/relay users add demo --password demo | tail -n 1 > .demo-token
	@echo "user demo / password demo; token in .demo-token: $$(cat .demo-token)"
	$(BIN)/relay serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy examples/mobile examples/ml-service examples/seed_client.py

test: lint
	$(BIN)/pytest

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
