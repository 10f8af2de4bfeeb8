# The two commands: `make run` (daemon + built-in simulator) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest codec-coverage bench bench-codec bench-session bench-binds bench-daemon bench-webhook bench-cluster bench-store simulate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/smppgw run --config config/local.toml

simulate: $(STAMP)
	$(BIN)/smppgw simulate

test: lint typecheck pytest codec-coverage

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -bb -m pytest

# The codec's own tests (tests/codec) cover every line and branch of smppgw/codec.
codec-coverage: $(STAMP)
	$(BIN)/python -bb -m coverage run --data-file=.coverage.codec --branch \
		--source=smppgw/codec -m pytest -q -p no:cacheprovider tests/codec
	$(BIN)/python -m coverage report --data-file=.coverage.codec --include='smppgw/codec/*' \
		--show-missing --skip-covered --fail-under=100

bench: bench-codec bench-session bench-binds bench-daemon bench-webhook

bench-codec: $(STAMP)
	$(BIN)/python tests/bench/bench_codec.py

bench-session: $(STAMP)
	$(BIN)/python tests/bench/bench_session.py

bench-binds: $(STAMP)
	$(BIN)/python tests/bench/bench_binds.py

bench-daemon: $(STAMP)
	$(BIN)/python tests/bench/bench_daemon.py

bench-webhook: $(STAMP)
	$(BIN)/python tests/bench/bench_webhook.py --backlog 3000

# Needs PostgreSQL (postgres@127.0.0.1:5432, or --dsn); not part of `make bench`.
bench-cluster: $(STAMP)
	$(BIN)/python tests/bench/bench_cluster.py

bench-store: $(STAMP)
	$(BIN)/python tests/bench/bench_store.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage .coverage.codec
