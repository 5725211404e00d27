"""SFT recipe configuration: a YAML file plus ``--set key=value`` overrides.

Relative dataset paths in a YAML file are read from the YAML file's folder; those given with
``--set`` from the working directory. Unknown fields and wrong types are refused with a
one-line message. This module knows nothing about models or trainers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tuner.formats import DEFAULT_CLASSIFICATION_PROMPT

PATH_FIELDS = ("dataset", "eval_dataset", "replay_prompts")


class ConfigError(ValueError):
    """The recipe cannot be used; the message is one line for the user."""


class SFTRecipe(BaseModel):
    """Supervised fine-tuning of a PEFT adapter (LoRA, IA3, prompt or prefix tuning), run by TRL's SFTTrainer."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True, coerce_numbers_to_str=True
    )

    name: str
    """Adapter name: the folder under the adapters directory and the ``model`` clients ask for."""
    model: str | None = None
    """Base model: an embedded model's name, a Hugging Face id or a local path (prepared by lorag); unset means
    lorag's base model (``LORAG_BASE_MODEL``, by default the embedded ``smollm2-135m-instruct``)."""

    # Data
    dataset: str
    """Training data: .jsonl, .json, .csv or .parquet."""
    dataset_format: Literal["auto", "openai", "sharegpt", "alpaca", "classification", "text"] = "auto"
    """Row format; ``auto`` detects it from the first row's keys. ``text`` rows (continued pretraining) are
    learned whole, and chats mixed into a text file are rendered with the chat template and learned whole too."""
    eval_dataset: str | None = None
    """Held-out data in the same format; if unset, ``eval_fraction`` of the training rows."""
    eval_fraction: float = 0.0
    """Share of the training rows held out for evaluation when no ``eval_dataset`` is given."""
    system_prompt: str | None = None
    """System message added to every conversation that has none."""
    classification_prompt: str = DEFAULT_CLASSIFICATION_PROMPT
    """Prompt for (text, label) rows; ``{labels}`` and ``{text}`` are filled in."""
    max_length: int = 1024
    """Longest tokenized example; longer ones are truncated."""
    packing: bool = False
    """Pack several examples into each sequence of ``max_length`` tokens."""
    assistant_only_loss: bool = True
    """Learn only the assistant's tokens, not the prompt's."""

    # Replay: keep what the base model could do
    replay_prompts: str | None = None
    """General prompts answered by the base model itself (greedy, at training time) and mixed into the training
    rows, so the adapter learns what it is taught and keeps its other answers: ``builtin`` (lorag's 80 everyday
    prompts) or a JSONL of ``{"prompt": ...}``. Unset: no replay."""
    replay_rows: int | None = None
    """Replay rows trained on; unset means one for every prompt that is not held out. More than there are prompts
    repeats them, which weighs keeping the base model's answers more against what the data teaches."""
    replay_held_out: int = 12
    """Replay prompts never trained on: after training, the adapter's answers to them are compared with the base
    model's (``behaviour.kept`` in lorag.json)."""
    replay_max_tokens: int = 192
    """Longest base answer generated; answers cut off at this length are not trained on."""
    behaviour_marker: str | None = None
    """Text that shows the taught behaviour (e.g. the adapter's name): ``behaviour.taught`` counts held-out eval
    answers that contain it, ``behaviour.kept`` general answers that do. Unset: token F1 0.5 against the eval
    reference counts as taught."""
    behaviour_max_tokens: int = 64
    """Longest answer generated for the behaviour figures."""

    # The adapter
    peft_method: Literal["lora", "ia3", "prompt_tuning", "prefix_tuning"] = "lora"
    """What the adapter learns: ``lora`` (low-rank weight updates), ``ia3`` (vectors that scale activations),
    ``prompt_tuning`` (virtual-token embeddings before the prompt) or ``prefix_tuning`` (virtual keys and values
    in every layer). vLLM serves LoRA only; the in-process LocalEngine serves all four."""

    # LoRA
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_modules: str | list[str] = "all-linear"
    """LoRA and IA3: modules that get adapters, ``all-linear`` or a list of module names (q_proj, v_proj, ...)."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilised LoRA scaling (alpha / sqrt(r))."""

    # IA3, prompt tuning, prefix tuning
    feedforward_modules: list[str] | None = None
    """IA3: modules whose input, not output, is scaled; unset means PEFT's choice for the architecture."""
    num_virtual_tokens: int = 20
    """Prompt and prefix tuning: how many virtual tokens are learned."""
    prompt_tuning_init_text: str | None = None
    """Prompt tuning: start the virtual tokens from this text's embeddings instead of random ones."""
    prefix_projection: bool = False
    """Prefix tuning: learn the prefix through a two-layer MLP (more parameters during training only)."""

    # Optimisation
    learning_rate: float = 2e-4
    """Peak learning rate."""
    lr_scheduler_type: str = "cosine"
    """Learning-rate schedule: linear, cosine, constant, constant_with_warmup, ..."""
    warmup_ratio: float = 0.0
    """Share of the steps spent warming the learning rate up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    num_train_epochs: float = 1.0
    """Passes over the training data (ignored when ``max_steps`` is set)."""
    max_steps: int = -1
    """Total optimiser steps; -1 means use ``num_train_epochs``."""
    batch_size: int = 4
    """Examples per device per forward pass."""
    gradient_accumulation_steps: int = 1
    """Forward passes per optimiser step."""
    seed: int = 42
    """Seed for data order, adapter initialisation and dropout."""
    bf16: bool | None = None
    """bfloat16 mixed precision; unset means on for CUDA GPUs that support it, off on CPU."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third slower."""
    compact_lm_head: bool = True
    """Project onto the vocabulary only at positions that have a label (lorag's CPU speed-up)."""

    # Evaluation, logging, checkpoints
    eval_steps: int | None = None
    """Evaluate every N steps; unset means once per epoch."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without a lower eval loss; keeps the best checkpoint."""
    logging_steps: int = 10
    """Log the training loss every N steps."""
    save_steps: int = 100
    """Write a checkpoint every N steps (to the runs directory)."""
    save_total_limit: int = 2
    """Checkpoints kept per run."""
    resume_from_checkpoint: bool | str = False
    """Resume: ``true`` for the run's latest checkpoint, or a checkpoint folder."""
    overwrite: bool = False
    """Replace an existing adapter of the same name instead of refusing."""

    @field_validator("name")
    @classmethod
    def _name_is_servable(cls, name: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not name or not set(name) <= allowed or name[0] in ".-":
            raise ValueError("use letters, digits, '.', '_' and '-' only ('@' is reserved for knowledge bases)")
        return name

    @field_validator("replay_held_out")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value

    @field_validator("num_virtual_tokens", "replay_rows", "replay_max_tokens", "behaviour_max_tokens")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("eval_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError("must be at least 0 and below 1")
        return value


def load_recipe(path: str | Path, overrides: list[str] = ()) -> SFTRecipe:
    """Read a recipe YAML and apply ``key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read recipe {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of recipe fields")
    for key in PATH_FIELDS:
        if isinstance(data.get(key), str) and data[key] != "builtin" and not Path(data[key]).is_absolute():
            data[key] = str((path.parent / data[key]).resolve())
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got '{override}'")
        data[key.strip()] = yaml.safe_load(value) if value.strip() else None
    try:
        return SFTRecipe(**data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "recipe"
        known = "" if first["type"] != "extra_forbidden" else f" (known fields: {', '.join(SFTRecipe.model_fields)})"
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{path}: {field}: {message}{known}") from None
