# opencams — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run test check lint typecheck unit clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==25.3"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/opencams db upgrade
	$(BIN)/opencams apply examples/demo.yaml
	$(BIN)/opencams demo-credentials examples/demo.yaml --endpoint $(HOST):$(PORT)
	OPENCAMS_SANDBOX_WEBHOOK_DELAY=$${OPENCAMS_SANDBOX_WEBHOOK_DELAY:-1} \
	  $(BIN)/opencams serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy src

check: lint typecheck

unit: $(STAMP)
	$(BIN)/pytest -q

test: check unit

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
