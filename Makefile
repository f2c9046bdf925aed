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

.PHONY: build venv demo test test-fast lint clean fuzz deploy-check gpu-check-smoke gpu-bundle images multihost-images multihost-test

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

# --show-output: the figures passing tests print (parity tables, accuracies, throughput) stay in the log.
# `cargo test` builds the binaries with the tests in one build graph (the test crates compile
# beside the agent library instead of after it), so the `build` behind the later steps is a no-op.
test: $(TORCH_STAMP) deploy-check
	cargo test --workspace --locked --release -- --show-output
	$(MAKE) --no-print-directory gpu-check-smoke
	$(MAKE) --no-print-directory multihost-test

# The GPU node check (scripts/gpu/check.sh) on this machine's CPU at small sizes: the same script a
# GPU node runs, as a smoke test of its every step.
gpu-check-smoke: build
	scripts/gpu/check.sh --device cpu --quick

# What scripts/gpu/check.sh needs on a GPU node without Rust or torchattacks, in .dev/gpu.
gpu-bundle: build
	scripts/gpu/bundle.sh

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

# Offline checks of deploy/: `systemd-analyze verify` on the units and the kustomize base rendered
# by `kubectl kustomize` and validated against the Kubernetes schemas by kubernetes-validate
# (installed into the project venv).
KUBERNETES_VALIDATE_VERSION := 1.37.0
DEPLOY_TOOLS_STAMP := $(VENV)/.kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION)

$(DEPLOY_TOOLS_STAMP): $(TORCH_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) "torch==$(TORCH_VERSION)"
	touch $@

deploy-check: $(DEPLOY_TOOLS_STAMP)
	deploy/check.sh

# Docker images of both binaries from the `make build` outputs, on a base image you already have
# (no registry needed): make images BASE_IMAGE=debian:bookworm-slim IMAGE_TAG=0.1.0
BASE_IMAGE ?= debian:bookworm-slim
IMAGE_TAG ?= 0.1.0
images: build
	deploy/docker/stage.sh target/docker
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t beard-coordinator:$(IMAGE_TAG) \
		-f deploy/docker/coordinator.Dockerfile target/docker/coordinator
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t beard-agent:$(IMAGE_TAG) \
		-f deploy/docker/agent.Dockerfile target/docker/agent

# The multi-host test (tests/tests/multihost_docker.rs): the coordinator and three agents in
# containers on a private network, from the images above on a base image built locally with
# debootstrap (deploy/docker/base-image.sh; cached, as are the images' layers). Needs Docker and
# root (debootstrap).
MULTIHOST_BASE ?= beard-base:bookworm-minbase
multihost-images: build
	@start=$$SECONDS; deploy/docker/base-image.sh $(MULTIHOST_BASE) && \
	$(MAKE) --no-print-directory images BASE_IMAGE=$(MULTIHOST_BASE) IMAGE_TAG=multihost && \
	echo "==> base image and images ready in $$((SECONDS - start)) s"

# --workspace: the same feature set as `make test`, so the test binary it built is reused, not rebuilt.
multihost-test: multihost-images
	cargo test --locked --release --workspace --test multihost_docker -- --ignored --nocapture
