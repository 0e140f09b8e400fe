# Every target wraps the `retain` CLI or a standard tool; the logic lives in the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= .retain
ACCOUNTS ?= 2000
DAYS ?= 540
SEED ?= 7
START ?= 2024-07-01
SCORE_CUTOFF ?= 2025-11-30
PLAN_WEEK ?= 2025-12-01
PORT ?= 8000
# JSON=--json: each demo step prints its whole result as JSON instead of a summary
JSON ?=
CHROMIUM ?= /usr/bin/chromium
# test processes: one a core; each builds its own session worlds, and a test module stays on one process.
# The slowest tests are listed at the end, so CI's log shows where the suite's 15 minutes go
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)

.DEFAULT_GOAL := help
.PHONY: help runtime install browser java demo test lint typecheck unit bench-features bench-incremental bench-train bench-serve bench-cockpit bench-uplift bench-byo bench-churn bench-store bench-sql bench-spark bench-demo bench-loop soak monitor-drift results cli-docs clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# uv installs the locked set about four times faster than pip (the same versions: the lock pins them all).
# The runtime alone is what `make demo` runs; a newcomer does not wait for the test, lint, Spark and
# Dagster packages (PySpark alone is over 300 MB), which `make install` adds for `make test`
$(BIN)/.runtime: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3 uv==0.13.8
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.lock -e .
	touch $@

$(BIN)/.installed: $(BIN)/.runtime
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.lock -e '.[dev,spark,dagster]'
	touch $@

runtime: $(BIN)/.runtime ## the venv with the runtime only: what `make demo` needs

install: $(BIN)/.installed ## the venv with everything: the runtime, tests, lint, Spark and Dagster

# Debian's Chromium for the cockpit's browser tests (Playwright drives it; it never downloads a browser)
$(CHROMIUM):
	$(AS_ROOT) sh -c 'apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)'

browser: $(CHROMIUM) ## Debian's chromium for the cockpit's end-to-end tests

# Debian's OpenJDK for the Spark engine's tests (a local Spark session runs in a JVM), unless a java is on PATH
java: ## a Java runtime for the Spark engine's tests (Debian's OpenJDK 17 when none is installed)
	@command -v java >/dev/null || $(AS_ROOT) sh -c 'apt-get install -y -q openjdk-17-jre-headless || (apt-get update -q && apt-get install -y -q openjdk-17-jre-headless)'

demo: runtime ## the main job on embedded defaults: simulate -> ingest -> features -> train -> plan -> score -> serve, the causal report in the background (into $(STORE)); JSON=--json for whole results
	@$(BIN)/retain simulate --store $(STORE) --accounts $(ACCOUNTS) --days $(DAYS) --seed $(SEED) --start $(START) $(JSON)
	@$(BIN)/retain ingest $(STORE)/simulation --store $(STORE) $(JSON)
	@$(BIN)/retain features build --store $(STORE) $(JSON)
	@$(BIN)/retain train --model churn --store $(STORE) --config experiments/churn.yaml --truth $(STORE)/simulation $(JSON)
	@$(BIN)/retain train --model expansion --store $(STORE) --config experiments/expansion.yaml --truth $(STORE)/simulation $(JSON)
	@$(BIN)/retain train --model uplift --store $(STORE) --config experiments/uplift.yaml --truth $(STORE)/simulation $(JSON)
	@$(BIN)/retain plan --store $(STORE) --week $(PLAN_WEEK) --capacity-hours 8 --out $(STORE)/plans/$(PLAN_WEEK).csv $(JSON)
	@$(BIN)/retain score --store $(STORE) --cutoff $(SCORE_CUTOFF) --out $(STORE)/scores.parquet $(JSON)
	@umask 077; $(BIN)/retain keys create --store $(STORE) --scopes admin --name demo | tail -n 1 > $(STORE)/demo.key
	@$(BIN)/retain example-account --store $(STORE) --cutoff $(SCORE_CUTOFF) --scores $(STORE)/scores.parquet > $(STORE)/demo.account
	@echo
	@echo "Retain is ready; the API serves the data as of $(SCORE_CUTOFF):"
	@echo "  API docs  http://127.0.0.1:$(PORT)/docs"
	@echo "  cockpit   http://127.0.0.1:$(PORT)/ui  (sign in with the key)"
	@echo "  API key   $$(cat $(STORE)/demo.key)  (also in $(STORE)/demo.key)"
	@echo "  try       curl -H \"Authorization: Bearer $$(cat $(STORE)/demo.key)\" 'http://127.0.0.1:$(PORT)/v1/accounts/$$(cat $(STORE)/demo.account)/risk?actions=3'"
	@echo "  causal    $(abspath $(STORE))/reports/causal/report.html  (written in the background in a few minutes; log: $(STORE)/reports/causal.log)"
	@echo
	@mkdir -p $(STORE)/reports
	@$(BIN)/retain report causal --store $(STORE) --out $(STORE)/reports/causal > $(STORE)/reports/causal.log 2>&1 &
	@$(BIN)/retain serve --store $(STORE) --port $(PORT) --as-of $(SCORE_CUTOFF)

lint: install ## ruff (lint and format check), the import layers (import-linter), declared dependencies (deptry)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/deptry .

typecheck: install ## mypy over the packages
	$(BIN)/mypy

unit: install ## the fast tier for the inner loop: tests/unit (in-process, no servers, no browser)
	$(PYTEST) tests/unit

test: lint typecheck browser java ## everything CI runs: lint, types and every tier (unit, integration, e2e)
	$(PYTEST)

bench-features: install ## feature build throughput vs a pandas baseline (1M and 10M events)
	$(BIN)/python -m experiments.benchmarks.features

bench-incremental: install ## a daily incremental feature build after a year of history against the full build (DuckDB, 10M events)
	$(BIN)/python -m experiments.benchmarks.incremental

bench-train: install ## simulate -> features -> train both models -> register (5,000 accounts), then scoring vs shap
	$(BIN)/python -m experiments.benchmarks.train

bench-serve: install ## serving latency and throughput vs mlflow models serve
	$(BIN)/python -m experiments.benchmarks.serving

bench-cockpit: install ## cockpit page render times for a 5,000-account book, against the 300 ms budget
	$(BIN)/python -m experiments.benchmarks.cockpit

bench-uplift: install ## uplift training and ranking latency, 10,000 accounts x 12 actions, vs the rules ranking
	$(BIN)/python -m experiments.benchmarks.uplift

bench-byo: install ## bring-your-own tables: Retain vs FLAML (same budget), LightGBM defaults, logistic; AUC and time
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.lock -e '.[dev,spark,dagster,bench]'
	$(BIN)/python -m experiments.benchmarks.byo

bench-churn: install ## the store's churn model vs logistic, health and oracle on 5 unseen seeds (3,000 accounts x 600 days)
	$(BIN)/python -m experiments.benchmarks.churn

bench-store: install ## store ingest (1M, 10M events) and API intervention writes vs the manifest store
	$(BIN)/python -m experiments.benchmarks.store

bench-sql: install ## ingest from PostgreSQL (1e5, 1e6 events): peak memory flat in the table's size, rows/s, incremental run
	$(BIN)/python -m experiments.benchmarks.sql_ingest

bench-spark: install ## Spark local[2] and a 2-worker cluster vs DuckDB: features (1M-50M events, full and daily), scoring, uplift fits
	$(BIN)/python -m experiments.benchmarks.spark

bench-demo: install ## make demo as a new user meets it: fresh clone, install, every step, until the API answers
	$(BIN)/python -m experiments.benchmarks.demo

bench-loop: install ## closed loop: a year of weekly plans by 5 policies on 3 unseen seeds, 2,000 accounts (hours)
	$(BIN)/python -m experiments.closed_loop --accounts 2000 --quarters 4 --seeds 101,102,103 --capacity-hours 8

soak: install ## 10 minutes of mixed API load with the decision log and online store failing part-way (as root)
	$(BIN)/python -m experiments.soak

monitor-drift: install ## drift monitor over 20 seeds: false alarms on undrifted worlds, delay to name a release
	$(BIN)/python -m experiments.monitor_drift

results: install ## render docs/results.md from the stamped runs in experiments/results/
	$(BIN)/python -m experiments.results

cli-docs: install ## write docs/cli.md from the `retain` command's own help (a unit test fails when it is stale)
	$(BIN)/python -m experiments.cli_docs

clean: ## remove the venv, caches and the default store
	rm -rf $(VENV) $(STORE) .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench-cache
