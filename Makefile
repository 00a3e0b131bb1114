# Bespoke developer commands. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install lint format typecheck imports manifests manifests-check test test-cluster demo check

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "Creating $(VENV) and installing the pinned versions (constraints.txt)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install the project with the pinned versions

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

test: install ## Run the test suite (no GPU, no cluster needed)
	$(BIN)/python -m pytest -m "not gpu and not cluster"

test-cluster: install ## Run the tests against a real kube-apiserver + etcd
	$(BIN)/python -m pytest -m cluster

demo: install ## The main job (for now: validate the examples)
	$(BIN)/bespoke validate examples/*.yaml

check: lint typecheck imports manifests-check test ## Everything CI runs
