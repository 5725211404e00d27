"""What the ``lorag`` extension of a fine-tuning job may set: an allow-list of recipe fields, each with a bound.

A job runs the tuner on the server, so its recipe reaches what the server reaches. Any key that may
train gets the fields below, each bounded so that no job can ask for a trillion epochs or keep
every checkpoint; nothing in them names a file, a URL, the Hub or a reporting service. Admin keys
may also give the fields of :data:`ADMIN_FIELDS`: a path only inside the folders the gateway was
configured with, and the Hub and reporting fields. Everything else is refused by name (400
``lorag.<field>``). The tuner validates the recipe again when the job is checked. This module knows
nothing about storage, processes or HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import invalid

Positive = Annotated[float, Field(gt=0)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.*-]+$")]
Text = Annotated[str, Field(max_length=4096)]
ADMIN_PATHS = ("replay_prompts", "reward_model", "chat_template_path")
"""Path fields an admin key may give, inside the configured folders; ``replay_prompts`` also takes ``builtin``."""
ADMIN_FIELDS = {*ADMIN_PATHS, "push_to_hub", "hub_model_id", "hub_strategy", "hub_private_repo", "report_to",
                "run_name"}  # fmt: skip
"""Fields only an admin key may set: they read server files or reach the network."""


NULLABLE = {"replay_prompts", "system_prompt", "behaviour_marker", "prompt_tuning_init_text", "early_stopping_patience"}
"""Fields whose ``null`` means something (no replay, no system prompt, ...); any other is refused, so that
``save_total_limit: null`` cannot keep every checkpoint."""


class JobExtension(BaseModel):
    """The recipe fields any training key may set in a job's ``lorag`` extension (docs/training.md has each)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["sft", "dpo", "kto", "orpo", "grpo", "reward"] | None = None
    dataset_format: Literal["auto", "openai", "sharegpt", "alpaca", "classification", "text", "preference",
                            "openai_dpo", "sharegpt_preference", "kto"] | None = None  # fmt: skip
    eval_fraction: Annotated[float, Field(ge=0, le=0.5)] | Literal["auto"] | None = None
    system_prompt: Text | None = None
    classification_prompt: Text | None = None
    reward_functions: Annotated[list[Literal["brevity", "no_repetition"]], Field(max_length=8)] | None = None
    graders: dict[str, Any] | None = None  # an OpenAI grader for grpo, checked as graders/validate does
    response_format: dict[str, Any] | None = None  # grpo's samples as JSON of a schema, checked by xgrammar
    replay_prompts: Literal["builtin", "auto"] | None = None
    replay_rows: Annotated[int, Field(ge=0, le=100_000)] | Literal["auto"] | None = None
    replay_held_out: Annotated[int, Field(ge=0, le=1000)] | None = None
    replay_max_tokens: Annotated[int, Field(ge=1, le=2048)] | None = None
    behaviour_marker: Annotated[str, Field(max_length=256)] | None = None
    behaviour_max_tokens: Annotated[int, Field(ge=1, le=1024)] | None = None
    peft_method: Literal["lora", "dora", "rslora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "freeze",
                         "full"] | None = None  # fmt: skip
    lora_r: Annotated[int, Field(ge=1, le=512)] | Literal["auto"] | None = None
    lora_alpha: Annotated[float, Field(gt=0, le=4096)] | Literal["auto"] | None = None
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    target_modules: Name | Annotated[list[Name], Field(min_length=1, max_length=64)] | None = None
    use_dora: bool | None = None
    use_rslora: bool | None = None
    feedforward_modules: Annotated[list[Name], Field(max_length=64)] | None = None
    num_virtual_tokens: Annotated[int, Field(ge=1, le=512)] | None = None
    encoder_hidden_size: Annotated[int, Field(ge=1, le=8192)] | None = None
    prompt_tuning_init_text: Text | None = None
    prefix_projection: bool | None = None
    batch_size: Annotated[int, Field(ge=1, le=1024)] | None = None
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=1000)] | None = None
    compact_lm_head: bool | None = None
    num_processes: Annotated[int, Field(ge=1, le=64)] | None = None
    early_stopping_patience: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_checkpoints: Annotated[int, Field(ge=1, le=100)] | None = None
    # TRL's fields (the method's config class)
    learning_rate: Annotated[float, Field(gt=0, le=1)] | Literal["auto"] | None = None
    num_train_epochs: Annotated[float, Field(gt=0, le=10_000)] | Literal["auto"] | None = None
    max_steps: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    warmup_steps: Annotated[float, Field(ge=0, le=100_000)] | Literal["auto"] | None = None
    lr_scheduler_type: Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                               "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau",
                               "cosine_with_min_lr", "warmup_stable_decay"] | None = None  # fmt: skip
    weight_decay: Annotated[float, Field(ge=0, le=1)] | None = None
    max_grad_norm: Annotated[float, Field(ge=0, le=1000)] | None = None
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=1024)] | None = None
    gradient_checkpointing: bool | None = None
    max_length: Annotated[int, Field(ge=16, le=131_072)] | Literal["auto"] | None = None
    eval_steps: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    logging_steps: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    save_steps: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    save_total_limit: Annotated[int, Field(ge=1, le=100)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    beta: Annotated[float, Field(gt=0, le=100)] | None = None
    loss_type: Name | Annotated[list[Name], Field(min_length=1, max_length=8)] | Literal["auto"] | None = None
    label_smoothing: Annotated[float, Field(ge=0, le=0.5)] | None = None
    desirable_weight: Positive | None = None
    undesirable_weight: Positive | None = None
    num_generations: Annotated[int, Field(ge=2, le=64)] | None = None
    max_completion_length: Annotated[int, Field(ge=1, le=8192)] | None = None
    temperature: Annotated[float, Field(gt=0, le=10)] | None = None
    assistant_only_loss: bool | None = None
    completion_only_loss: bool | None = None
    packing: bool | None = None


def checked(extension: dict[str, Any], admin: bool, folders: list[Path]) -> dict[str, Any]:
    """The extension's recipe fields, or 400 naming the first field a key of this kind may not set, or set so.

    ``folders``: where an admin's paths may point (resolved, links followed)."""
    if nulls := sorted(key for key, value in extension.items() if value is None and key not in NULLABLE):
        raise invalid(f"lorag.{nulls[0]}", f"lorag.{nulls[0]} may not be null: leave it out for the default")
    for key, value in extension.items():
        path = key in ADMIN_PATHS and value not in (None, "builtin", "auto")
        if not admin and (path or (key in ADMIN_FIELDS and key not in ADMIN_PATHS)):
            raise invalid(f"lorag.{key}", f"lorag.{key} may be set only by an admin key: it reads server files "
                                          "or reaches the network")  # fmt: skip
    own = {key: value for key, value in extension.items() if not (admin and key in ADMIN_FIELDS)}
    try:
        JobExtension.model_validate(own)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0])
        if first["type"] == "extra_forbidden":
            reason = f"lorag.{field} may not be set by a fine-tuning job: docs/fine-tuning-api.md lists those it may"
            raise invalid(f"lorag.{field}", reason) from None
        raise invalid(f"lorag.{field}", f"lorag.{field}: {first['msg']}") from None
    if admin:
        for key in ADMIN_PATHS:
            value = extension.get(key)
            if isinstance(value, str) and value not in ("builtin", "auto") and not _inside(value, folders):
                where = ", ".join(str(folder) for folder in folders)
                raise invalid(f"lorag.{key}", f"lorag.{key} must be a path inside the gateway's folders ({where})")
    return extension


def _inside(path: str, folders: list[Path]) -> bool:
    resolved = Path(path).expanduser().resolve()
    return any(resolved.is_relative_to(folder.expanduser().resolve()) for folder in folders)
