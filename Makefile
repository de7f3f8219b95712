# opencams — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run test check lint typecheck imports unit clean bench browser

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
	OPENCAMS_CALLBACK_ALLOW_HTTP=$${OPENCAMS_CALLBACK_ALLOW_HTTP:-true} \
	OPENCAMS_CALLBACK_ALLOW_PRIVATE=$${OPENCAMS_CALLBACK_ALLOW_PRIVATE:-true} \
	OPENCAMS_SANDBOX_MEDIA_FETCH_ALLOW_PRIVATE=$${OPENCAMS_SANDBOX_MEDIA_FETCH_ALLOW_PRIVATE:-true} \
	  $(BIN)/opencams serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src bench

# The layer map of docs/architecture.md: a layer that imports upward fails here.
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

check: lint typecheck imports

# Two workers, a test file to each in turn; then, alone, the tests marked serial (they restart
# the machine's PostgreSQL or load both cores). The slowest tests of each part are listed.
unit: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not serial" --durations=15
	$(BIN)/pytest -q -m serial --durations=5

# The console's browser tests drive Debian's chromium (tests/console): installed here when
# missing and root, like wrk for the bench; without it they skip locally and fail under CI=true.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "the console's browser tests need chromium: sudo apt-get install -y chromium" >&2; \
	  fi; }

test: check browser unit

# The benchmark (bench/README.md): writes bench/RESULTS.md. BENCH_ARGS="--database postgresql",
# "--quick", "--duration 20" … are passed to bench/run.py. wrk is a Debian package.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else \
	    echo "make bench needs wrk: install the Debian package with  sudo apt-get install -y wrk" >&2; \
	    exit 2; \
	  fi; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
