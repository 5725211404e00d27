"""The TRL config of a recipe: each method's own config class, filled from the recipe.

A recipe's fields are lorag's own (data, replay, the tuning type, PEFT settings) plus any field
of its method's TRL config class (``SFTConfig``, ``DPOConfig``, ...: the method's record in
:mod:`tuner.methods` names it), which TRL itself validates: lorag declares none of them again.
:data:`LORAG_DEFAULTS` are the few values lorag starts from, for every method, where TRL's defaults
suit a LoRA on a small model less well; a method's record adds its own. The learning rate and the
epochs are the ``auto`` policy's (:mod:`tuner.auto`), which sees the data and the model. This module
knows nothing about data or models.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pydantic

from tuner.methods import METHODS

# lorag's starting values (a recipe overrides any of them); TRL's own defaults apply to the rest.
LORAG_DEFAULTS = {
    "lr_scheduler_type": "cosine",
    "gradient_checkpointing": False,  # TRL turns it on: a third slower, and small models do not need it
    "max_length": 1024,
    "logging_steps": 10,
    "save_steps": 100,
    "save_total_limit": 2,
    "seed": 42,
    "report_to": "none",
}
SET_BY_LORAG = {"output_dir", "per_device_train_batch_size", "per_device_eval_batch_size", "data_seed",
                "eval_strategy", "save_strategy", "load_best_model_at_end", "metric_for_best_model", "bf16",
                "use_cpu"}  # fmt: skip


def config_class(method: str) -> type:
    return METHODS[method].config_class()


def defaults(method: str) -> dict:
    """lorag's starting values for ``method``'s TRL config: every method's, then the method's own."""
    return LORAG_DEFAULTS | dict(METHODS[method].defaults)


def config_fields(method: str) -> set[str]:
    """The names a recipe of ``method`` may set on TRL's config (those lorag sets itself excluded)."""
    return {f.name for f in dataclasses.fields(config_class(method)) if f.init} - SET_BY_LORAG


def check_types(method: str, fields: dict) -> dict:
    """``fields`` as TRL's declared types read them (YAML's string "3e-4" becomes the float 3e-4); ValueError
    naming the first field whose value does not fit its type.

    TRL's configs are plain dataclasses, which take any value; their annotations are what TRL means.
    """
    hints = typing.get_type_hints(config_class(method))
    model = pydantic.create_model(
        "TRLFields",
        __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
        **{k: (hints[k], ...) for k in fields},
    )
    try:
        checked = model(**fields)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{first['loc'][0]}: {first['msg']}") from None
    return {k: getattr(checked, k) for k in fields}


def trl_value(method: str, fields: dict, name: str):
    """A TRL setting as the run will use it: the recipe's, else lorag's default, else TRL's."""
    if name in fields:
        return fields[name]
    starting = defaults(method)
    if name in starting:
        return starting[name]
    field = next(f for f in dataclasses.fields(config_class(method)) if f.name == name)
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def build_config(
    method: str, fields: dict, run_dir: Path, batch_size: int, has_eval: bool, early_stopping: bool, bf16: bool
):
    """TRL's config for ``method`` from the recipe's TRL ``fields``; TypeError or ValueError for a bad one."""
    settings = {k: v for k, v in defaults(method).items() if k in config_fields(method)}
    settings |= fields
    eval_strategy = ("steps" if settings.get("eval_steps") else "epoch") if has_eval else "no"
    return config_class(method)(
        output_dir=str(run_dir),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        data_seed=settings["seed"],
        eval_strategy=eval_strategy,
        save_strategy=eval_strategy if early_stopping else "steps",
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        bf16=bf16,
        **settings,
    )
