# Set-up commands: `make demo` and `make test` work on a fresh machine with Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.stamp-runtime
DEV_STAMP     := $(VENV)/.stamp-dev

.PHONY: demo test bench lint format venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-installs whenever pyproject.toml changes, so `make` always refreshes the venv it uses.
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[openai,anthropic]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

venv: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/python examples/demo.py

# Starts PostgreSQL, Redis and ClickHouse on loopback (scripts/servers.sh installs what is missing),
# installs headless Chromium and the Node.js SDK the server tests drive, runs the suite against them,
# and stops the servers on the way out, whatever the outcome.
test: $(DEV_STAMP)
	@for s in scripts/chromium.sh scripts/node_deps.sh; do [ ! -x $$s ] || $$s || true; done
	@trap 'scripts/servers.sh stop' EXIT INT TERM; scripts/servers.sh start; . .servers/env; \
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(DEV_STAMP)
	@trap 'scripts/servers.sh stop' EXIT INT TERM; scripts/servers.sh start; . .servers/env; \
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

clean:
	rm -rf $(VENV) .servers .costlens .pytest_cache .mypy_cache .ruff_cache
