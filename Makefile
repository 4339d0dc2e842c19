# The two commands: `make run` serves on :5000 with ./data; `make test` runs everything.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit e2e bench bench-s3 venv test-deps bench-deps

venv:
	@scripts/bootstrap-venv.sh

run: venv
	$(BIN)/dockyard serve $(CONFIG)

test-deps:
	@scripts/install-test-deps.sh

lint: venv
	$(BIN)/ruff check dockyard tests
	$(BIN)/ruff format --check dockyard tests
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q -m "not e2e"

e2e: venv test-deps
	$(BIN)/pytest -q -m e2e

test: venv test-deps lint
	$(BIN)/pytest -q

bench-deps:
	@scripts/install-bench-deps.sh

# Dockyard and registry:2 side by side, ratios printed (docs/performance.md).
bench: venv bench-deps
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The same on S3: both registries on one SeaweedFS started for the run, a bucket each.
bench-s3: venv bench-deps
	$(BIN)/python -m bench.run --storage s3 $(BENCH_ARGS)
