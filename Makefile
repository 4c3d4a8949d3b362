# One task runner: `make run`, `make test`, `make bench`, `make lint`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench lint migrate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/oms run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pytest tests/bench -q -s -p no:logging $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check platform tests
	$(BIN)/mypy
	$(BIN)/lint-imports

migrate: $(STAMP)
	$(BIN)/oms migrate

clean:
	rm -rf $(VENV) var
