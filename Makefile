# `make run` serves on the embedded default (SQLite + in-memory broker);
# `make test` runs linters, type checks and the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	INBOX_ENV=$${INBOX_ENV:-development} $(BIN)/inbox serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy inbox realtime connectors

test: lint typecheck
	$(BIN)/pytest

# `make bench ARGS=--quick` for a short check; bench/README.md lists the options.
bench: $(BIN)/.installed
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
