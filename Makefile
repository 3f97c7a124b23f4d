# The two documented commands: `make run` and `make test`. Everything else is their plumbing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# Test worker processes (pytest-xdist): `auto` is one per CPU; 0 runs the suite in this process.
TEST_WORKERS ?= auto

.PHONY: install run test lint typecheck format clean bench chromium

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("Souq needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/souq db upgrade
	$(BIN)/souq demo --if-empty
	$(BIN)/souq serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# --dist worksteal: each worker starts with one contiguous slice of the collected tests, and a
# worker that runs dry takes half of the longest queue left. tests/conftest.py orders the tests
# for it: the costly ones (schemathesis, tests marked `slow`, fresh servers, the CLI, the
# browser) dealt out over the slices and run first, so no worker is left running a long test
# alone at the end; the rest in collected order, each engine's tests together, so a worker
# mostly starts one engine's server and database, and one that meets the other engine starts a
# second server once and keeps both (tests/conftest.py), nothing is rebuilt. It balances uneven
# tests (1 ms to minutes) better than `load`, and unlike `loadgroup`/`loadscope` by engine or
# module it keeps every worker busy however many there are.
test: lint typecheck chromium
	SOUQ_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal --durations=25

# The browser tests (tests/browser) drive Debian's Chromium through Playwright; they are part of
# every run, never skipped. Installed here when missing and we are root, else a clear failure.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Chromium for the browser tests (apt-get install chromium)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install -y chromium'" >&2; \
	    exit 1; \
	  fi; \
	fi

# Benchmarks (not part of `make test`): PostgreSQL on 127.0.0.1, see BENCHMARKS.md.
bench: install
	$(BIN)/python -m bench.all $(if $(QUICK),--quick)

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache test-artifacts
