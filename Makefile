# Watchkeeper: every target installs what it needs into .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install quickstart test lint typecheck bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: up + demo + what was captured.
quickstart: $(STAMP)
	@bash scripts/quickstart.sh

## The test suite (real OTLP exporters, real chDB engine, real instrumentation payloads).
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	@$(MAKE) --no-print-directory typecheck

## mypy sees the installed layout (watchkeeper.<folder>) through a tree of links.
typecheck: $(STAMP)
	@mkdir -p build/typecheck/watchkeeper
	@for d in agent collectors detectors dashboards; do ln -sfn ../../../$$d build/typecheck/watchkeeper/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy -p watchkeeper

## The Helm chart: lint it (helm is built once, into ~/.cache/watchkeeper/bin, by scripts/helm).
.PHONY: helm-lint
helm-lint:
	"$$(scripts/helm)" lint --strict helm/watchkeeper

bench: $(STAMP)
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/sidecar_throughput.py
	$(BIN)/python bench/ingest_throughput.py

clean:
	rm -rf build .watchkeeper .pytest_cache .mypy_cache .ruff_cache
