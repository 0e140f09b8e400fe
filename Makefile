# Every target wraps the `retain` CLI or a standard tool; the logic lives in the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= .retain
ACCOUNTS ?= 2000
DAYS ?= 540
SEED ?= 7

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck unit bench-features clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(BIN)/.installed ## create the local venv with the pinned dependencies

demo: install ## the main job on embedded defaults: simulate -> ingest -> features (into $(STORE))
	$(BIN)/retain simulate --store $(STORE) --accounts $(ACCOUNTS) --days $(DAYS) --seed $(SEED)
	$(BIN)/retain ingest $(STORE)/simulation --store $(STORE)
	$(BIN)/retain features build --store $(STORE)

lint: install ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy over the packages
	$(BIN)/mypy

unit: install ## the test suite alone
	$(BIN)/pytest -q

test: lint typecheck unit ## everything CI runs: lint, types, tests

bench-features: install ## feature build throughput vs a pandas baseline (1M and 10M events)
	$(BIN)/python -m experiments.benchmarks.features

clean: ## remove the venv, caches and the default store
	rm -rf $(VENV) $(STORE) .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench-cache
