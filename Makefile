# `make run` serves on the embedded default (SQLite + in-memory broker);
# `make test` runs linters, type checks and the whole test suite.
# Both install exactly what requirements.lock pins; `make lock` refreshes it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LATEST := .venv-latest

.PHONY: run test lint typecheck audit bench lock check-lock check-latest clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) tools/lock.py check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

run: $(BIN)/.installed
	INBOX_ENV=$${INBOX_ENV:-development} $(BIN)/inbox serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy inbox realtime connectors clients/python/src

# Known vulnerabilities in the lock's pins (says so, and passes, when offline).
audit: $(BIN)/.installed
	$(BIN)/python tools/audit.py

# Test files run in parallel, two processes per core: most tests spend their time
# waiting on a server, a browser or a socket (`make test PYTEST_ARGS=` for one).
PYTEST_ARGS ?= -n $(shell echo $$(( $$(nproc) * 2 ))) --dist loadfile

test: check-lock lint typecheck audit
	$(BIN)/pytest $(PYTEST_ARGS)

check-lock:
	$(PYTHON) tools/lock.py check

# Resolve what pyproject.toml asks for, keeping today's pins where they fit, and commit
# the result; `make lock ARGS=--upgrade` takes the newest versions the ranges allow.
lock:
	$(PYTHON) tools/lock.py refresh $(ARGS)

# Not part of CI: the newest allowed versions, in a throwaway environment, through
# lint, types and tests, to see a breaking release before `make lock` takes it.
check-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/pip list --format=freeze > $(LATEST)/versions.txt
	$(LATEST)/bin/ruff check .
	$(LATEST)/bin/mypy inbox realtime connectors clients/python/src
	$(LATEST)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)
	rm -rf $(LATEST)

# `make bench ARGS=--quick` for a short check; bench/README.md lists the options.
bench: $(BIN)/.installed
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache .mypy_cache .ruff_cache .hypothesis
