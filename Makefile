# moe-ep: `make plan` and `make test` work on a fresh machine with Python 3.11 and pip.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?= dev
CRD_DIR ?= $(abspath ../shared/crds)
export MOE_EP_CRD_DIR ?= $(CRD_DIR)

.PHONY: plan test test-fast conformance bench render clean install install-vllm

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

plan: install
	$(BIN)/moe-ep preview --stack $(STACK)

render: install
	$(BIN)/moe-ep render --stack $(STACK) --out out/$(STACK)

test: install install-vllm
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not conformance"

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache
