# Vigil Relay: the commands a newcomer needs.  `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo serve test lint format bench bench-browser clean

help:
	@echo "make demo    set up, then run the workbench with the relay, 4 simulated phones and the ML service"
	@echo "             (PORT=5007: another port; FRESH=1: without the history of earlier runs)"
	@echo "make serve   set up, then run the relay on http://127.0.0.1:8000 (creates user 'demo')"
	@echo "make test    set up, then run ruff, mypy and the test suite"
	@echo "make lint    ruff and mypy only"
	@echo "make format  format the code with ruff"
	@echo "make bench   run the benchmark suite against a fresh relay and the Node peer (BENCH_ARGS=--smoke for a quick one)"
	@echo "make bench-browser  frames shown in a browser tab, and the workbench's CPU from 1 to 4 tabs"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 relay workbench benchmarks examples >/dev/null
	touch $(STAMP)

install: $(STAMP)

# make demo PORT=5007 picks the port; make demo FRESH=1 starts without the history of earlier runs.
demo: install
	@$(BIN)/python examples/demo.py $(if $(PORT),--port $(PORT)) $(if $(filter 1 yes true,$(FRESH)),--fresh)

serve: install
	@$(BIN)/relay users add demo --password demo | tail -n 1 > .demo-token
	@echo "user demo / password demo; token in .demo-token: $$(cat .demo-token)"
	$(BIN)/relay serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy examples/mobile examples/ml-service examples/seed_client.py
	@# Sockets are the Tornado package's business alone (docs/ARCHITECTURE.md).
	@! grep -rnE '^\s*(from|import) tornado\.(websocket|iostream)' --include=*.py relay workbench examples \
		| grep -v '^relay/tornado/' || { echo "only relay/tornado/ may import tornado.websocket or tornado.iostream"; exit 1; }

test: lint
	$(BIN)/pytest

bench-browser: install
	$(BIN)/python benchmarks/browser/run.py

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
