# Set-up and checks; see README.md. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench interop flag-coverage clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A server, an OpenFeature app exporting OTLP to it, the report; ends by itself.
demo: $(STAMP)
	$(BIN)/flagscope demo

# The example shop's tests with flag coverage against its flagd definitions file.
flag-coverage: $(STAMP)
	$(BIN)/pytest examples -p no:cacheprovider --flagscope-coverage --flagscope-flags examples/app/flags.json

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks interop
	$(BIN)/ruff format --check src tests examples benchmarks interop

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests

# The dashboard's browser test drives Debian's Chromium through Playwright (browser
# downloads are not possible here): install the package when it is missing.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "the browser test needs $(CHROMIUM): sudo apt-get install -y chromium" >&2; \
		exit 1; \
	fi

unit: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_collector.py
	$(BIN)/python benchmarks/bench_exporter.py
	$(BIN)/python benchmarks/bench_query.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_coverage.py

# Real JavaScript producers (OpenFeature's and LaunchDarkly's OpenTelemetry hooks, the
# OpenTelemetry JS OTLP exporters), installed with npm at the versions interop/package-lock.json
# pins, run live against `flagscope serve`. Needs node 20 and npm; not part of `make test`.
NPM ?= npm
INTEROP_STAMP := interop/node_modules/.installed

$(INTEROP_STAMP): interop/package.json interop/package-lock.json
	cd interop && $(NPM) ci
	touch $(INTEROP_STAMP)

interop: $(STAMP) $(INTEROP_STAMP)
	$(BIN)/python interop/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis interop/node_modules interop/out
