"""Rewards for online RL (``method: grpo``): lorag's named reward functions, and a trained reward model as one.

A recipe names reward functions (``reward_functions: [brevity]``) or a reward model folder
trained with ``method: reward`` (``reward_model: adapters/my-reward``), or both; TRL adds their
scores (``reward_weights`` weighs them). Every reward takes TRL's arguments, the prompts and the
completions as chat messages, and returns one float per completion, so the same functions score
held-out answers before and after training. This module knows nothing about trainers or recipes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _texts(completions: list) -> list[str]:
    return [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]


def brevity(prompts: list, completions: list, **kwargs) -> list[float]:
    """1 for an empty answer, falling towards 0 as it grows: 0.5 at 20 words."""
    return [1 / (1 + len(text.split()) / 20) for text in _texts(completions)]


def no_repetition(prompts: list, completions: list, **kwargs) -> list[float]:
    """The share of distinct word trigrams: 1 for no repeated trigram, towards 0 for a loop."""
    scores = []
    for words in (text.split() for text in _texts(completions)):
        trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        scores.append(len(set(trigrams)) / len(trigrams) if trigrams else 1.0)
    return scores


REWARD_FUNCTIONS = {"brevity": brevity, "no_repetition": no_repetition}


def load_reward_model(folder: Path, model_dir: Path, base_sha256: str):
    """The reward model in ``folder`` (a ``method: reward`` run) on the base model in ``model_dir``, merged.

    ValueError when the folder is not a reward model for this base model."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = json.loads((Path(folder) / "lorag.json").read_text())
    if manifest.get("kind") != "reward_model":
        raise ValueError(f"{folder} is not a reward model (lorag.json kind is '{manifest.get('kind')}')")
    if manifest["base_model"]["sha256"] != base_sha256:
        raise ValueError(f"{folder} was trained on base model '{manifest['base_model']['id']}', not this one")
    if manifest["peft_method"] in ("freeze", "full"):
        return AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForSequenceClassification.from_pretrained(
        model_dir, dtype=torch.float32, num_labels=1, pad_token_id=tokenizer.pad_token_id
    )
    return PeftModel.from_pretrained(base, str(folder)).merge_and_unload().eval()


def model_reward(model, tokenizer):
    """A reward function that scores each (prompt, completion) conversation with ``model``."""

    @torch.no_grad()
    def reward_model(prompts: list, completions: list, **kwargs) -> list[float]:
        pairs = zip(prompts, completions, strict=True)
        texts = [tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in pairs]
        side, tokenizer.padding_side = tokenizer.padding_side, "right"  # the score is read at the last real token
        try:
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tokenizer.padding_side = side
        return model(**encoded.to(model.device)).logits[:, 0].tolist()

    return reward_model
