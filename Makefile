# Yufu's commands. `make help` lists them; `make test` installs what it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stamps record a finished install, so later targets skip it until its inputs change.
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.DEFAULT_GOAL := help
.PHONY: help setup compile test test-deep run demo bench gas-report lint clean distclean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

setup: $(PIP_STAMP) $(NPM_STAMP) ## Create .venv, install Python and npm dependencies (once)

$(PIP_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	test -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil \
		|| test -x node_modules/@foundry-rs/anvil/anvil \
		|| { echo "anvil binary missing after npm ci" >&2; exit 1; }
	touch $@

compile: setup ## Compile contracts/ (cached in build/) and print code sizes
	$(BIN)/python -m chain.compiler

test: setup ## Run the test suite, anvil tests included, deep Hypothesis profiles excluded
	$(BIN)/pytest -q -m "not deep"

test-deep: setup ## Run every test, with the deep Hypothesis profile
	YUFU_HYPOTHESIS_PROFILE=deep $(BIN)/pytest -q

run: setup ## Run the Yufu node on the devnet port (data in .yufu/devnet) until Ctrl-C
	$(BIN)/python scripts/run_devnet.py

demo: setup ## Play a plan's whole life on an embedded eth-tester chain (scripts/demo.py)
	$(BIN)/python scripts/demo.py

bench: setup ## Benchmark the node against eth-tester and anvil (RECORDS=n to size it)
	$(BIN)/python scripts/bench.py $(if $(RECORDS),--records $(RECORDS))

gas-report: setup ## Print gas used per contract function (scripts/gas_report.py)
	$(BIN)/python scripts/gas_report.py

lint: setup ## Check style and types (ruff, mypy)
	$(BIN)/ruff check .
	$(BIN)/mypy chain

clean: ## Remove build output and tool caches
	rm -rf build .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path './node_modules/*' \
		-prune -exec rm -rf {} +

distclean: clean ## Also remove .venv and node_modules
	rm -rf $(VENV) node_modules
