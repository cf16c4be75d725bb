# modelops — every target bootstraps what it needs (idempotent): a .venv with the pinned packages, a tools venv
# for checkov, and the system programs haproxy + shellcheck + prometheus (with promtool) + chromium (headless, for
# the report rendering tests) (apt-get on Debian/Ubuntu, brew on macOS).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
PEER := .venv-peer
# Commands on PATH; system-deps installs the package of each missing one (promtool: prometheus).
SYSTEM_TOOLS := haproxy shellcheck promtool chromium
STACK ?= local

# BentoML keeps models and bentos here, inside the project, not in ~/bentoml.
export BENTOML_HOME := $(CURDIR)/.work/bentoml
export BENTOML_DO_NOT_TRACK := true
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup system-deps demo test bench lint format down clean

help:
	@echo "make demo    train, build, deploy replicas behind HAProxy, gate a candidate, print the verdict"
	@echo "make test    the whole test suite"
	@echo "make bench   throughput/latency benchmark (batched vs naive vs no-op; direct vs HAProxy; OpenMP threads; cache off vs on; vs MLServer)"
	@echo "make lint    ruff check + format check + mypy (modelops, stacks, bento, loadtests)"
	@echo "make down    stop anything 'modelops up' left running"
	@echo "make setup   bootstrap only (.venv, tools venv, haproxy, shellcheck, prometheus, chromium)"

setup: $(BIN)/.installed $(TOOLS)/.installed system-deps

$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "modelops needs Python 3.11: install it, or run make PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# checkov pins many packages of its own: it lives in a separate venv so it never fights the main one.
$(TOOLS)/.installed: constraints-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-tools.txt checkov
	@touch $@

# MLServer (the peer `make bench` measures) pins its own web stack: a venv of its own, built only for the benchmark.
$(PEER)/.installed: constraints-peer.txt
	@test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-peer.txt \
	  mlserver mlserver-sklearn uvloop scikit-learn onnxruntime
	@touch $@

# promtool (Prometheus' rule checker and test runner) comes with the prometheus package, like the server itself.
system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	packages=""; for tool in $$missing; do case $$tool in promtool) packages="$$packages prometheus";; *) packages="$$packages $$tool";; esac; done; \
	echo "installing system packages:$$packages"; \
	if command -v apt-get >/dev/null; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$packages >/dev/null; \
	elif command -v brew >/dev/null; then \
	  brew install $$packages; \
	else \
	  echo "error: cannot install$$packages here (no apt-get, no brew). Install them with your package manager"; \
	  echo "       (haproxy >= 2.4, shellcheck, prometheus >= 2.37 with promtool, chromium), make sure they are on PATH, and run make again."; \
	  exit 1; \
	fi; \
	for tool in $$missing; do command -v $$tool >/dev/null || { echo "error: $$tool still not on PATH"; exit 1; }; done

demo: setup
	$(BIN)/modelops demo --stack $(STACK)

test: setup
	$(BIN)/python -m pytest

bench: setup $(PEER)/.installed
	$(BIN)/modelops bench --stack $(STACK)
	$(BIN)/modelops bench --cache --stack $(STACK)
	$(BIN)/modelops bench --stack $(STACK) --peer mlserver --peer-venv $(PEER)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

down:
	@if [ -x $(BIN)/modelops ]; then $(BIN)/modelops down --stack $(STACK); else echo "nothing to stop (no .venv)"; fi

clean: down
	rm -rf $(VENV) $(TOOLS) $(PEER) .work reports .pytest_cache .ruff_cache
