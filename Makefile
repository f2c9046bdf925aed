# beard-rs: build, demo and tests. `make demo` and `make test` work on a fresh clone: they create
# the project-local venv with PyPI torch (the libtorch the agent links) when it is missing.

SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PYTHON ?= python3
TORCH_VERSION := 2.11.0
# Override for nodes whose driver needs another CUDA build, e.g.
#   make build TORCH_INDEX=https://download.pytorch.org/whl/cu126   (or TORCH_SPEC=/path/to/torch.whl)
TORCH_INDEX ?=
TORCH_SPEC ?= torch==$(TORCH_VERSION)

export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1

TORCH_STAMP := $(VENV)/.torch-$(TORCH_VERSION)

.PHONY: build venv demo test test-fast lint clean

venv: $(TORCH_STAMP)

$(TORCH_STAMP):
	@echo "==> creating $(VENV) with $(TORCH_SPEC)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	touch $@

build: $(TORCH_STAMP)
	cargo build --release --locked --bin coordinator --bin agent

demo: build
	./scripts/demo.sh

test-fast: $(TORCH_STAMP)
	cargo test --workspace --lib --locked

test: build
	cargo test --workspace --locked --release
