# modelops — every target bootstraps what it needs (idempotent). `make demo` installs only what the demo runs: a
# .venv with the pinned packages and HAProxy. `make test` adds what the tests run: a tools venv for checkov and the
# system programs shellcheck, prometheus (with promtool), alertmanager and chromium (headless, for the report
# rendering tests). apt-get on Debian/Ubuntu, brew on macOS.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first of python3.11, python3.12, python3.13 found (any 3.11.x, Debian 12's 3.11.2 included), else python3.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do command -v $$p >/dev/null && { command -v $$p; break; }; done)
# pip in the venvs, pinned: Debian's venvs start with pip 23.0, whose resolver differs from the one the pins were made with.
PIP_VERSION := 26.3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
PEER := .venv-peer
# Commands on PATH; system-deps installs the package of each missing one (promtool: prometheus). The demo needs only
# HAProxy; the tests need the rest.
DEMO_TOOLS := haproxy
TEST_TOOLS := $(DEMO_TOOLS) shellcheck promtool alertmanager chromium
STACK ?= local

# BentoML keeps models and bentos here, inside the project, not in ~/bentoml.
export BENTOML_HOME := $(CURDIR)/.work/bentoml
export BENTOML_DO_NOT_TRACK := true
export PATH := $(CURDIR)/$(BIN):$(PATH):/usr/local/sbin:/usr/sbin:/sbin
# (the sbin directories: Debian puts haproxy there, off a non-root user's PATH)

.PHONY: help setup setup-test system-deps container-deps delegate-budgets demo test bench lint format down clean

help:
	@echo "make demo    train, build, deploy replicas behind HAProxy, gate a candidate, print the verdict"
	@echo "make test    the whole test suite"
	@echo "make bench   throughput/latency benchmark (batched vs naive vs no-op; direct vs HAProxy; OpenMP threads; cache off vs on; vs MLServer)"
	@echo "make lint    ruff check + format check + mypy (modelops, stacks, bento, loadtests)"
	@echo "make down    stop anything 'modelops up' left running"
	@echo "make setup   bootstrap what the demo needs (.venv, haproxy); make setup-test: also what the tests need"

setup: $(BIN)/.installed
	@$(MAKE) --no-print-directory system-deps TOOLS_NEEDED="$(DEMO_TOOLS)"

setup-test: setup $(TOOLS)/.installed
	@$(MAKE) --no-print-directory system-deps TOOLS_NEEDED="$(TEST_TOOLS)"

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: no python3.11, python3.12, python3.13 or python3 on PATH: install Python 3.11-3.13, or run make PYTHON=/path/to/python3"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else f"modelops needs Python 3.11, 3.12 or 3.13 ({sys.executable} is {sys.version.split()[0]}): run make PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# checkov pins many packages of its own: it lives in a separate venv so it never fights the main one.
$(TOOLS)/.installed: constraints-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-tools.txt checkov
	@touch $@

# MLServer (the peer `make bench` measures) pins its own web stack: a venv of its own, built only for the benchmark.
$(PEER)/.installed: constraints-peer.txt
	@test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(PEER)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-peer.txt \
	  mlserver mlserver-sklearn uvloop scikit-learn onnxruntime
	@touch $@

# promtool (Prometheus' rule checker and test runner) comes with the prometheus package, like the server itself.
# Some programs go by two names: chromium (Debian) / chromium-browser (Ubuntu), prometheus-alertmanager (Debian's
# package and binary) / alertmanager (brew). Either name on PATH will do.
TOOLS_NEEDED ?= $(TEST_TOOLS)
found = case $$1 in chromium) command -v chromium || command -v chromium-browser;; 	  alertmanager) command -v prometheus-alertmanager || command -v alertmanager;; *) command -v $$1;; esac >/dev/null
system-deps:
	@has() { $(found); }; \
	missing=""; for tool in $(TOOLS_NEEDED); do has $$tool || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	apt=""; command -v apt-get >/dev/null && apt=1; \
	packages=""; for tool in $$missing; do case $$tool in promtool) packages="$$packages prometheus";; \
	  alertmanager) packages="$$packages $${apt:+prometheus-}alertmanager";; *) packages="$$packages $$tool";; esac; done; \
	echo "installing system packages:$$packages"; \
	if command -v apt-get >/dev/null; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq; \
	  case " $$packages " in *" chromium "*) apt-cache show chromium >/dev/null 2>&1 || packages="$${packages/ chromium/ chromium-browser}";; esac; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$packages >/dev/null; \
	elif command -v brew >/dev/null; then \
	  brew install $$packages; \
	else \
	  echo "error: cannot install$$packages here (no apt-get, no brew). Install them with your package manager"; \
	  echo "       (haproxy >= 2.4; for the tests also shellcheck, prometheus >= 2.37 with promtool, alertmanager >= 0.25, chromium), make sure they are on PATH, and run make again."; \
	  exit 1; \
	fi; \
	for tool in $$missing; do has $$tool || { echo "error: $$tool still not on PATH"; exit 1; }; done

# The demo runs on a stack of its own (`demo`: the local stack's settings, its own deployment and history).
demo: setup
	$(BIN)/modelops demo

# The container tests (tests/stacks/test_container.py) build and run the bento's image with a real Docker engine:
# Debian's docker.io (the tests start dockerd themselves when none runs) and debootstrap (the base image, since no
# registry may be reachable). Linux with apt-get only; elsewhere install Docker Engine and debootstrap yourself.
container-deps:
	@missing=""; for tool in dockerd debootstrap; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	packages=""; for tool in $$missing; do case $$tool in dockerd) packages="$$packages docker.io";; *) packages="$$packages $$tool";; esac; done; \
	if command -v apt-get >/dev/null; then \
	  echo "installing system packages:$$packages"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$packages >/dev/null; \
	else \
	  echo "warning: the container tests need Docker Engine and debootstrap (missing:$$missing); install them to run those tests"; \
	fi

# Two phases: everything that does not judge timing runs on TEST_WORKERS processes (pytest-xdist, one file per
# worker), then the tests marked `exclusive` (they judge latency, throughput or scaling on real replicas) run alone,
# so they measure this machine and not their neighbours. Both phases always run; the target fails if either did.
# PYTEST_ARGS passes options to both (e.g. PYTEST_ARGS="-x -k canary").
TEST_WORKERS ?= 2
test: setup-test container-deps
	@status=0; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not exclusive" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m pytest -m exclusive $(PYTEST_ARGS) || status=$$?; \
	exit $$status

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

# CPU budgets without root (cgroup v1): an administrator hands a plain user a group of their own, once.
DELEGATE_TO ?= $(or $(SUDO_USER),$(USER))
delegate-budgets: $(BIN)/.installed
	$(BIN)/python -c 'from modelops.targets.local.cgroups import delegate; print("delegated", delegate("$(DELEGATE_TO)"))'

down:
	@if [ -x $(BIN)/modelops ]; then $(BIN)/modelops down --stack $(STACK) && $(BIN)/modelops down --stack demo; \
	else echo "nothing to stop (no .venv)"; fi

clean: down
	rm -rf $(VENV) $(TOOLS) $(PEER) .work reports .pytest_cache .ruff_cache
