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

TORCHATTACKS_VERSION := 3.5.1
TORCH_STAMP := $(VENV)/.torch-$(TORCH_VERSION)-torchattacks-$(TORCHATTACKS_VERSION)

.PHONY: build venv demo test test-fast lint clean fuzz

venv: $(TORCH_STAMP)

$(TORCH_STAMP):
	@echo "==> creating $(VENV) with $(TORCH_SPEC)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	# torchattacks for the parity tests; pinning torch keeps pip from replacing the libtorch we link.
	$(VENV)/bin/pip install --quiet --disable-pip-version-check torchattacks==$(TORCHATTACKS_VERSION) "torch==$(TORCH_VERSION)"
	touch $@

build: $(TORCH_STAMP)
	cargo build --release --locked --bin coordinator --bin agent

demo: build
	./scripts/demo.sh

test-fast: $(TORCH_STAMP)
	cargo test --workspace --lib --locked

test: build
	cargo test --workspace --locked --release

lint: $(TORCH_STAMP)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --release --locked -- -D warnings

clean:
	cargo clean

# Fuzzes the sweep parser for FUZZ_SECONDS (default 10 minutes) with proptest mutations of
# coordinator/tests/fuzz-corpus/; `make test` replays that corpus and runs a short round.
# FUZZ_SAVE=1 also writes inputs with new outcomes into the corpus (commit them).
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) cargo test --locked --release -p beard-coordinator --test fuzz_sweep \
		mutated_corpus_keeps_the_invariants -- --nocapture
