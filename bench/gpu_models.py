"""Random-weight models for the GPU check: the shapes users run, built from a config alone, as prepared folders.

Speed does not depend on the weights' values, so the GPU figures need no downloaded checkpoint:
each shape is a Llama config (the embedded SmolLM2-135M-Instruct's own, and Llama 3.2 1B's and
Llama 3.1 8B's layer shapes), filled with random weights from a fixed seed and written as a folder
that lorag's tuner and LocalEngine take like any prepared base model (``lorag-model.json``, the
ChatML template with generation markers, safetensors).

What is not the real model's: the tokenizer is a byte-level BPE trained here on the bench's own
texts (about 1,000 tokens, ChatML's special tokens), so the vocabulary rows past it are never in a
prompt and decode to nothing; the token counts a figure divides by are the model's, not the text's.
The generation config names no end-of-sequence token, so every generation runs to ``max_tokens``
(as vLLM's ``ignore_eos``). RoPE scaling is left out: it changes no shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from serve.adapters import AdapterRegistry, AdapterSpec
from serve.chat_template import CHATML_END_OF_TURN, CHATML_TEMPLATE
from serve.models import FORMAT_VERSION, MANIFEST, PreparedModel, weights_sha256

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
LLAMA3 = {"vocab_size": 128256, "num_key_value_heads": 8, "rope_theta": 500000.0, "max_position_embeddings": 8192}
SHAPES = {
    # SmolLM2-135M-Instruct: ~/.cache/lorag/models/smollm2-135m-instruct/config.json as `lorag model prepare` writes it
    "embedded": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                 "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152, "tie_word_embeddings": True,
                 "rope_theta": 100000.0, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
    # Llama 3.2 1B
    "llama-1b": LLAMA3 | {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                          "num_attention_heads": 32, "head_dim": 64, "tie_word_embeddings": True},
    # Llama 3.1 8B
    "llama-8b": LLAMA3 | {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                          "num_attention_heads": 32, "head_dim": 128, "tie_word_embeddings": False},
    # two small layers: for trying the check's Python parts on a CPU
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 2048, "max_position_embeddings": 2048},
}  # fmt: skip
DTYPES = {"embedded": "float32", "llama-1b": "bfloat16", "llama-8b": "bfloat16", "tiny": "float32"}
"""Weights' dtype as saved: lorag prepares the embedded model in float32; Llama checkpoints ship in bfloat16."""
SPECIAL = ["<|endoftext|>", "<|im_start|>", CHATML_END_OF_TURN]
TEXTS = [
    ROOT / "tuner" / "data" / "lorag-identity" / "train.jsonl",
    ROOT / "tuner" / "data" / "brevity" / "trimmed-pairs.jsonl",
]


def parameters(shape: str) -> int:
    """The shape's parameter count, from its config alone (no weights made)."""
    c = SHAPES[shape]
    head_dim = c.get("head_dim", c["hidden_size"] // c["num_attention_heads"])
    attention = c["hidden_size"] * head_dim * (2 * c["num_attention_heads"] + 2 * c["num_key_value_heads"])
    layer = attention + 3 * c["hidden_size"] * c["intermediate_size"] + 2 * c["hidden_size"]
    embeddings = c["vocab_size"] * c["hidden_size"] * (1 if c.get("tie_word_embeddings") else 2)
    return c["num_hidden_layers"] * layer + embeddings + c["hidden_size"]


def tokenizer():
    """A byte-level BPE with ChatML's special tokens and lorag's ChatML template, trained on the bench's texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=SPECIAL, initial_alphabet=alphabet)
    bpe.train_from_iterator([line for path in TEXTS for line in path.read_text().splitlines()], trainer)
    made = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=CHATML_END_OF_TURN, pad_token=SPECIAL[0])
    made.add_special_tokens({"additional_special_tokens": SPECIAL[1:]})
    made.chat_template = CHATML_TEMPLATE
    return made


def build(shape: str, folder: Path, device: str = "cpu", adapters: int = 4) -> tuple[Path, list[AdapterSpec]]:
    """Write ``shape`` with random weights (seed 0) as a prepared folder ``folder/<shape>``, and ``adapters`` random
    LoRAs for it (r=8, every linear layer, non-zero B) under ``folder/<shape>-adapters``; return the model folder
    and the adapters as the registry checked them."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    made = tokenizer()
    torch.manual_seed(SEED)
    config = LlamaConfig(**SHAPES[shape], pad_token_id=made.pad_token_id, bos_token_id=None, eos_token_id=None)
    dtype = getattr(torch, DTYPES[shape])
    with torch.device(device):  # made where it runs: an 8B model is built in seconds on a GPU
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = None  # every generation runs to max_tokens
    model.generation_config.pad_token_id = made.pad_token_id
    target = Path(folder) / shape
    model.save_pretrained(target)
    made.save_pretrained(target)
    manifest = PreparedModel(
        id=f"random-{shape}",
        source=f"bench/gpu_models.py: {shape} shape, random weights, seed {SEED}",
        sha256=weights_sha256(target),
        chat_template_sha256=hashlib.sha256(made.chat_template.encode()).hexdigest(),
        end_of_turn=CHATML_END_OF_TURN,
        model_type="llama",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        format_version=FORMAT_VERSION,
    )
    (target / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    specs = random_loras(model, manifest, Path(folder) / f"{shape}-adapters", adapters)
    return target, specs


def random_loras(model, base: PreparedModel, folder: Path, count: int) -> list[AdapterSpec]:
    """``count`` LoRAs on every linear layer of ``model`` with random non-zero weights, each with a ``lorag.json``
    for ``base``; ``model`` is left as it was."""
    import torch
    from peft import LoraConfig, get_peft_model

    names = [f"random-{i}" for i in range(count)]
    for i, name in enumerate(names):
        torch.manual_seed(100 + i)
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        peft = get_peft_model(model, config)
        peft.save_pretrained(folder / name)
        model = peft.unload()
        record = {"name": name, "kind": "adapter", "method": "sft", "peft_type": "LORA",
                  "base_model": {"id": base.id, "sha256": base.sha256, "source": base.source}}  # fmt: skip
        (folder / name / "lorag.json").write_text(json.dumps(record, indent=2) + "\n")
    scan = AdapterRegistry(folder, base.id, base.sha256).scan()
    if scan.refused:
        raise RuntimeError(f"the registry refused the bench's adapters: {scan.refused}")
    return [scan.adapters[name] for name in names]
