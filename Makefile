# lorag: `make finetune` installs, prepares the embedded model and trains the demo adapter;
# `make test` runs every test. Everything lives in .venv/ inside the checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := tuner/configs/lorag-identity.yaml

.PHONY: install model finetune test test-fast bench lint

install: $(VENV)/.installed

# torch first, pinned: on CPU machines pip takes the local CPU wheel; an unpinned torch would pull
# the registry's newest CUDA build (gigabytes) in with transformers.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@

model: install
	$(BIN)/lorag model prepare

finetune: adapters/lorag-identity/lorag.json

# Retrains only when the recipe or its data changed; `overwrite` because make asked for it.
adapters/lorag-identity/lorag.json: $(DEMO) tuner/data/lorag-identity/*.jsonl | install
	$(BIN)/lorag finetune $(DEMO) --set overwrite=true

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python bench/train_throughput.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
