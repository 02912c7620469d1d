# Set-up and checks; see README.md. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit browser bench interop flag-coverage clean

# No pip inside the venv at first: copying one in (ensurepip) takes seconds the demo does
# not need. The interpreter's own pip installs into it (pip --python, pip 22.3 or later);
# without one, the venv gets its own.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

QUIET_PIP := --quiet --disable-pip-version-check
VENV_PIP := $(BIN)/python -m pip
HOST_PIP := $(PYTHON) -m pip --python $(BIN)/python

# The demo needs only flagscope[demo] (the server and an OpenFeature app): a lean first run,
# without byte-compiling what it never imports.
DEMO_STAMP := $(VENV)/.demo-installed

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	@if $(HOST_PIP) --version >/dev/null 2>&1; then \
		echo "$(HOST_PIP) install -e '.[demo]'"; \
		$(HOST_PIP) install $(QUIET_PIP) --no-compile -e '.[demo]'; \
	else \
		$(BIN)/python -m ensurepip --default-pip >/dev/null && \
		$(VENV_PIP) install $(QUIET_PIP) --no-compile -e '.[demo]'; \
	fi
	touch $(DEMO_STAMP)

# Everything `make test` needs: the extras plus the dev dependency group (PEP 735), which
# needs pip 25.1 or later in the venv.
$(STAMP): $(BIN)/python pyproject.toml
	@$(VENV_PIP) --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null
	$(VENV_PIP) install $(QUIET_PIP) --upgrade 'pip>=25.1'
	$(VENV_PIP) install $(QUIET_PIP) -e '.[server,demo]' --group dev
	touch $(STAMP) $(DEMO_STAMP)

# A server, an OpenFeature app exporting OTLP to it, the report; ends by itself.
demo: $(DEMO_STAMP)
	$(BIN)/flagscope demo

# The example shop's tests with flag coverage against its flagd definitions file.
flag-coverage: $(STAMP)
	$(BIN)/pytest examples -p no:cacheprovider --flagscope-coverage --flagscope-flags examples/app/flags.json

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks interop docs/screenshot.py
	$(BIN)/ruff format --check src tests examples benchmarks interop docs/screenshot.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests

# The dashboard's browser test drives Chromium through Playwright. tests/browser.py finds
# one (FLAGSCOPE_CHROMIUM, the PATH, Playwright's own browsers); only when there is none
# does .ci/install-chromium install Debian's package (root only; it waits for the apt lock).
browser: $(STAMP)
	@$(BIN)/python tests/browser.py >/dev/null || .ci/install-chromium

unit: $(STAMP) browser
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_collector.py
	$(BIN)/python benchmarks/bench_exporter.py
	$(BIN)/python benchmarks/bench_query.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_coverage.py
	$(BIN)/python benchmarks/bench_plugin_import.py

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
