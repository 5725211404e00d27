"""The ``auto`` policy: the settings a recipe leaves unset, chosen from its data, its model and its tuning type.

Every rule lives here, one function per setting, each returning the value and the rule that chose
it in words; ``lorag.json`` records both under ``auto`` and the job events show them. A value the
recipe gives (or a ``--set``, or a job's hyperparameter) always wins: the policy fills in only
what was left unset or set to ``"auto"``. The inputs are the training rows and their tokens, the
longest row, the model's width and context, the method and the tuning type. This module knows
nothing about trainers, files or formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuner.config import AUTO, Recipe

REFERENCE_WIDTH = 4096
"""Hidden size of the 7B models the usual learning rates were tuned on (QLoRA: 2e-4 for a LoRA of every linear
layer of a 7B or 13B model, 1e-4 from 33B); narrower models take larger steps, by the square root of the ratio
(between constant and muP's 1/width: on the embedded 576-wide model 1/width's 1.4e-3 drifted further from the
base model for the same facts learned)."""
LEARNING_RATE = {"adapter": 2e-4, "whole": 2e-5}
"""SFT's learning rate at the reference width: a LoRA (or DoRA, rsLoRA), or every weight (``full``, ``freeze``)."""
LEARNING_RATE_CAP = {"adapter": 1e-3, "whole": 1e-4}
FIXED_LEARNING_RATE = {"ia3": 3e-3, "prompt_tuning": 3e-2, "p_tuning": 1e-2, "prefix_tuning": 1e-2}
"""Tuning types that learn a few vectors, not weight updates: the rates their papers and PEFT's examples use,
whatever the width (IA3: T-Few's 3e-3; prompt tuning 3e-2; P-tuning and prefix tuning 1e-2)."""
PREFERENCE_SCALE = 0.1
"""DPO, KTO, ORPO, reward models and GRPO start from a model that can already do the task: a tenth of SFT's
rate (Tulu 3: SFT 5e-6, DPO 5e-7 on 8B)."""
MIN_EXAMPLES = {"sft": 120, "preference": 160}
"""A small set is repeated until training has seen this many rows (OpenAI's fine-tuning guide does the same from
100 examples): a fact taught in a few phrasings needs a few dozen optimiser steps to be recalled."""
MAX_EXAMPLES = 25_000
"""A large set gets fewer epochs, down to one, once this many rows are seen (OpenAI's guide, the same number)."""
EPOCHS, MAX_EPOCHS = 3, 20
SMALL_DATA_TOKENS, LARGE_DATA_TOKENS = 100_000, 10_000_000
"""LoRA rank: 8 below the first (a fact, a style, a format), 16 up to the second, 32 above."""
WARMUP = 0.1
"""Share of the steps over which the learning rate rises to its peak."""


@dataclass(frozen=True)
class DataSize:
    """What the policy reads of the training data."""

    rows: int  # training rows: chats, pairs, labelled answers or prompts
    tokens: int  # their tokens, all together
    longest: int  # tokens in the longest row
    chats: bool = True  # conversations to answer (not text to continue, nor labels to pick)


@dataclass(frozen=True)
class ModelSize:
    width: int  # hidden size
    context: int  # longest sequence the model takes


@dataclass(frozen=True)
class Choice:
    value: object
    rule: str

    def record(self) -> dict:
        return {"value": self.value, "rule": self.rule}


def unset(recipe: Recipe, field: str) -> bool:
    """Whether ``field`` is the policy's to choose: neither given in the recipe nor given as a value other than auto."""
    extra = recipe.model_extra or {}
    if field in extra:
        return extra[field] == AUTO
    return field not in recipe.model_fields_set


def held_out_share(recipe: Recipe, rows: int) -> Choice | None:
    """How much of the training file is held out when the recipe names no eval data and no ``eval_fraction``."""
    if recipe.eval_dataset or not unset(recipe, "eval_fraction"):
        return None
    if rows < 5:
        return Choice(0.0, f"{rows} rows: too few to hold any out")
    return Choice(0.1, "a tenth of the rows (at least one), whole prompts at a time, to measure what was learned")


def choose(recipe: Recipe, data: DataSize, model: ModelSize) -> dict[str, Choice]:
    """The policy's choice for every field of :data:`RULES` that the recipe leaves unset and that applies."""
    chosen: dict[str, Choice] = {}
    for field, rule in RULES.items():
        if field == "warmup_steps" and not unset(recipe, "warmup_ratio"):
            continue
        if unset(recipe, field) and (choice := rule(recipe, data, model, chosen)) is not None:
            chosen[field] = choice
    return chosen


def apply(recipe: Recipe, chosen: dict[str, Choice]) -> Recipe:
    """``recipe`` with the chosen values filled in (TRL's fields as extras, lorag's as fields)."""
    values = {field: choice.value for field, choice in chosen.items()}
    declared = Recipe.model_fields
    extras = {k: v for k, v in values.items() if k not in declared}
    fields = {k: v for k, v in values.items() if k in declared}
    resolved = recipe.model_copy(update=fields)
    resolved.__pydantic_extra__ = {k: v for k, v in (recipe.model_extra or {}).items() if v != AUTO} | extras
    return resolved


def _family(recipe: Recipe) -> str:
    return "sft" if recipe.method == "sft" else "preference"


def _replay_prompts(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice | None:
    if recipe.method in ("reward", "grpo"):
        return None
    return Choice("builtin", "lorag's everyday prompts: the base model's answers to the held-out ones measure drift")


def _learning_rate(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice:
    scale = PREFERENCE_SCALE if recipe.method != "sft" else 1.0
    after = f" x {PREFERENCE_SCALE} for {recipe.method}" if scale != 1.0 else ""
    if recipe.peft_method in FIXED_LEARNING_RATE:
        value = FIXED_LEARNING_RATE[recipe.peft_method] * scale
        return Choice(_round(value), f"{recipe.peft_method} learns vectors, not weight updates: its usual rate{after}")
    kind = "whole" if recipe.peft_method in ("full", "freeze") else "adapter"
    value = min(LEARNING_RATE[kind] * math.sqrt(REFERENCE_WIDTH / model.width), LEARNING_RATE_CAP[kind]) * scale
    what = "every weight" if kind == "whole" else "a LoRA"
    return Choice(
        _round(value),
        f"{LEARNING_RATE[kind]:g} for {what} of a 4096-wide model, x sqrt(4096/{model.width}) for this one's width "
        f"(at most {LEARNING_RATE_CAP[kind]:g}){after}",
    )


def _epochs(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice:
    if recipe.method == "grpo":
        return Choice(1.0, "one pass over the prompts: each is sampled num_generations times a step")
    least = MIN_EXAMPLES[_family(recipe)]
    if data.rows * EPOCHS < least:
        epochs = min(MAX_EPOCHS, math.ceil(least / max(data.rows, 1)))
        return Choice(float(epochs), f"{data.rows} rows: repeated until training has seen {least} (at most "
                                     f"{MAX_EPOCHS} epochs)")  # fmt: skip
    if data.rows * EPOCHS > MAX_EXAMPLES:
        epochs = max(1, MAX_EXAMPLES // data.rows)
        return Choice(float(epochs), f"{data.rows} rows: enough epochs to see about {MAX_EXAMPLES} rows")
    return Choice(float(EPOCHS), f"{data.rows} rows: {EPOCHS} epochs")


def _warmup(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice:
    return Choice(WARMUP, f"the learning rate rises over the first {WARMUP:.0%} of the steps")


def _rank(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice | None:
    if recipe.peft_method not in ("lora", "dora", "rslora"):
        return None
    if data.tokens < SMALL_DATA_TOKENS:
        return Choice(8, f"{data.tokens} training tokens (under {SMALL_DATA_TOKENS:,}): rank 8")
    if data.tokens < LARGE_DATA_TOKENS:
        return Choice(16, f"{data.tokens} training tokens (under {LARGE_DATA_TOKENS:,}): rank 16")
    return Choice(32, f"{data.tokens} training tokens: rank 32")


def _alpha(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice | None:
    if recipe.peft_method not in ("lora", "dora", "rslora"):
        return None
    rank = chosen["lora_r"].value if "lora_r" in chosen else recipe.lora_r
    return Choice(2 * rank, "twice the rank")


def _loss_type(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice | None:
    if recipe.method != "dpo":
        return None
    return Choice(
        ["sigmoid", "sft"],
        "DPO plus the SFT loss on the chosen answers (RPO): without it DPO can make the chosen answers less likely "
        "too, and a small set then drifts",
    )


def _max_length(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice | None:
    default = recipe.trl("max_length") if recipe.method != "grpo" else None
    if default is None or data.longest <= default:
        return None
    value = min(model.context, 64 * math.ceil(data.longest / 64))
    return Choice(value, f"the longest row has {data.longest} tokens (the model takes {model.context})")


def _replay_rows(recipe: Recipe, data: DataSize, model: ModelSize, chosen: dict) -> Choice | None:
    if recipe.method != "sft" or not (recipe.replay_prompts or "replay_prompts" in chosen):
        return None
    if not data.chats:
        return Choice(0, "not chat data: the general prompts only measure drift, none is trained on")
    return Choice(data.rows, "as many of the base model's own answers as training rows: keeping weighs as much as "
                             "learning")  # fmt: skip


def _round(value: float) -> float:
    return float(f"{value:.2g}")


RULES = {
    "replay_prompts": _replay_prompts,
    "learning_rate": _learning_rate,
    "num_train_epochs": _epochs,
    "warmup_steps": _warmup,
    "lora_r": _rank,
    "lora_alpha": _alpha,
    "loss_type": _loss_type,
    "max_length": _max_length,
    "replay_rows": _replay_rows,
}
"""The fields :func:`choose` fills in, in the order it decides them (``lora_alpha`` follows the rank chosen);
``eval_fraction`` is :func:`held_out_share`'s, when the data is split."""
