# The back-pain evidence pipeline. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Stage commands in dvc.yaml (backpain, papermill) and tests find the project's tools first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup repro test lint format bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-7s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint requirements.lock --editable '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the project with its pinned dependencies

repro: $(STAMP)  ## rebuild every output from data/raw with dvc repro (shipped defaults)
	$(BIN)/dvc repro

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest -n 2 --durations=15

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## run benchmarks and simulation studies (slow), results in benchmarks/results/
	$(BIN)/python -m benchmarks

clean:  ## remove the virtual environment and caches (not data)
	rm -rf $(VENV) .pytest_cache .ruff_cache
