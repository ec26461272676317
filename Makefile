# moe-ep: `make plan` and `make test` work on a fresh machine with Python 3.11 and pip.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?= dev
CRD_DIR ?= $(abspath ../shared/crds)
export MOE_EP_CRD_DIR ?= $(CRD_DIR)

.PHONY: plan test test-fast conformance bench render clean install install-vllm install-checkov \
	tools cluster-up cluster-down up down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# vLLM 0.33.0's Python code on the CPU, for the conformance tests (see scripts/install-vllm.sh).
$(VENV)/.vllm: scripts/install-vllm.sh | $(VENV)/.installed
	PYTHON=$(BIN)/python bash scripts/install-vllm.sh
	touch $@

install-vllm: $(VENV)/.vllm

# checkov in a venv of its own: its pins (packaging<24, networkx<2.7) cannot sit beside pulumi's
# (packaging>=26). tests/test_security.py runs $(VENV)/checkov/bin/checkov.
CHECKOV_PIN := checkov==3.3.30
$(VENV)/checkov/.installed: Makefile | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/checkov || python3 -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet $(CHECKOV_PIN)
	touch $@

install-checkov: $(VENV)/checkov/.installed

plan: install
	$(BIN)/moe-ep preview --stack $(STACK)

render: install
	$(BIN)/moe-ep render --stack $(STACK) --out out/$(STACK)

test: install install-vllm install-checkov tools
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not conformance and not e2e"

bench: install
	$(BIN)/python -m benchmarks

# The local control plane (e2e/): binaries built from pinned Go modules (Go 1.26+), cached outside
# the work tree; etcd, the Kubernetes control plane, LWS and KWOK on 127.0.0.1 (.e2e/kubeconfig).
tools:
	e2e/tools/build

cluster-up: install
	$(BIN)/python e2e/plane.py up

cluster-down:
	[ ! -x $(BIN)/python ] || $(BIN)/python e2e/plane.py down

# `make up STACK=dev` deploys a stack (or an example: STACK=shared-namespace) to the local plane.
up: cluster-up
	$(BIN)/python e2e/deploy.py up $(STACK)

down: install
	$(BIN)/python e2e/deploy.py destroy $(STACK)

clean: cluster-down
	rm -rf $(VENV) out .pytest_cache .e2e
