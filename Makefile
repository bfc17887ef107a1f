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

## The compiled paths (native/, Rust: ingest's span-to-row path, redaction's detectors): built
## when cargo is on the machine; without them both take the Python paths (slower, same output).
NATIVE := $(VENV)/.installed-native
$(NATIVE): $(STAMP) native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs native/src/*/*.rs)
	@if command -v cargo >/dev/null; then \
	  $(BIN)/python -m pip install --quiet ./native; \
	else echo "no Rust toolchain (cargo): ingest will take the Python path"; fi
	@touch $@

install: $(NATIVE)

## The main job on the embedded default: up + demo + what was captured.
quickstart: $(NATIVE)
	@bash scripts/quickstart.sh

## The test suite (real OTLP exporters, real chDB engine, real instrumentation payloads).
test: $(NATIVE)
	WATCHKEEPER_REQUIRE_NATIVE=$$(command -v cargo >/dev/null && echo 1 || echo 0) \
	  $(BIN)/python -m pytest -q

lint: $(NATIVE)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache --no-logo
	@if cargo fmt --version >/dev/null 2>&1; then cd native && cargo fmt --check; \
	  else echo "no rustfmt: native/ formatting not checked"; fi
	@if cargo clippy --version >/dev/null 2>&1; then cd native && \
	  cargo clippy --quiet --release --all-targets --no-default-features -- -D warnings; \
	  else echo "no clippy: native/ not linted"; fi
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

bench: $(NATIVE)
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/sidecar_throughput.py
	$(BIN)/python bench/ingest_throughput.py

clean:
	rm -rf build .watchkeeper .pytest_cache .mypy_cache .ruff_cache native/target
