"""A fine-tuning job request turned into a tuner recipe, and OpenAI's ``"auto"`` hyperparameters resolved.

OpenAI's ``method.type`` picks the tuner's method (``supervised`` -> ``sft``, ``dpo`` -> ``dpo``);
its hyperparameters become recipe fields (``n_epochs`` -> ``num_train_epochs``, ``batch_size``,
``learning_rate_multiplier``, ``beta``). One left ``"auto"`` (or out) is left out of the recipe, so
the tuner's ``auto`` policy chooses it from the data and the model; the job shows the value once
training starts (:mod:`gateway.jobs.progress`). The ``lorag`` extension adds the recipe fields
:mod:`gateway.jobs.extension` allows, ``method`` included (``kto``, ``orpo``, ``grpo``), each
bounded; the tuner validates the recipe again when the job is checked. The fields a job sets
itself (its name, data and progress file) cannot be given.
This module knows nothing about storage, processes or HTTP.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.errors import invalid
from gateway.jobs.extension import checked
from gateway.jobs.protocol import Hyperparameters, JobCreate, ResolvedHyperparameters

METHODS = {"supervised": "sft", "dpo": "dpo"}
SET_BY_JOBS = {"name", "model", "dataset", "eval_dataset", "events_file", "overwrite", "resume_from_checkpoint"}
"""Recipe fields a job sets itself: the ``lorag`` extension may not."""
NOT_SERVABLE = {
    "freeze": "freeze training writes a whole model: train it with `lorag finetune` and serve it as a base model",
    "full": "full fine-tuning writes a whole model: train it with `lorag finetune` and serve it as a base model",
    "reward": "a reward model scores answers rather than chatting: train it with `lorag finetune`",
}
"""What a job cannot train, and why: it would not be a chat adapter the gateway can hot-load."""
JOB_DEFAULTS = {"logging_steps": 1, "save_total_limit": 3}
"""A job logs every step (the live loss curve) and keeps its last three checkpoints, as OpenAI does."""


def job_method(request: JobCreate) -> tuple[str, Hyperparameters]:
    """OpenAI's method type and its hyperparameters (the deprecated top-level ones for a request without method)."""
    if request.method is None:
        return "supervised", request.hyperparameters or Hyperparameters()
    kind = request.method.type
    if kind == "reinforcement":
        raise invalid(
            "method.type",
            "reinforcement fine-tuning with OpenAI's graders is not supported: train online RL with "
            "lorag={'method': 'grpo', 'reward_functions': [...]}, or use 'supervised' or 'dpo'",
        )
    settings = getattr(request.method, kind)
    return kind, settings.hyperparameters if settings else Hyperparameters()


def resolve(kind: str, given: Hyperparameters) -> ResolvedHyperparameters:
    """The job's hyperparameters as created: given values checked, ``"auto"`` kept until the tuner chooses;
    ``beta`` only for DPO."""
    values = given.model_dump()
    if kind == "dpo":
        values["beta"] = "auto" if values["beta"] is None else values["beta"]
    elif values["beta"] is not None:
        raise invalid("method.supervised.hyperparameters.beta", "beta is a DPO hyperparameter")
    for name, value in values.items():
        if value not in (None, "auto") and value <= 0:
            raise invalid(f"method.{kind}.hyperparameters.{name}", f"{name} must be above 0, not {value}")
    return ResolvedHyperparameters(**values)


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    """``ft:<base>:lorag:<suffix>:<id>``, OpenAI's shape; a base model given as a path or a Hugging Face id is named
    by its last part, and characters a model name cannot hold become ``-``."""
    short = re.sub(r"[^A-Za-z0-9._-]", "-", base.rstrip("/").rsplit("/", 1)[-1])
    return f"ft:{short}:lorag:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}"


def recipe_for(
    request: JobCreate, kind: str, hyperparameters: ResolvedHyperparameters, name: str, training: Path,
    validation: Path | None, admin: bool = False, folders: list[Path] = (),
) -> dict:  # fmt: skip
    """The recipe fields of the job: its data, OpenAI's hyperparameters, then the ``lorag`` extension (checked
    against :mod:`gateway.jobs.extension`'s allow-list; an admin's paths only inside ``folders``)."""
    extension = dict(request.lorag or {})
    if taken := sorted(SET_BY_JOBS & set(extension)):
        raise invalid(f"lorag.{taken[0]}", f"lorag.{taken[0]} is set by the job itself")
    extension = checked(extension, admin, list(folders))
    if extension.get("peft_method") in NOT_SERVABLE or extension.get("method") in NOT_SERVABLE:
        what = extension.get("peft_method") if extension.get("peft_method") in NOT_SERVABLE else extension["method"]
        param = "lorag.peft_method" if what == extension.get("peft_method") else "lorag.method"
        raise invalid(param, f"a job's model is served as an adapter the moment it succeeds; {NOT_SERVABLE[what]}")
    recipe = {"name": name, "method": METHODS[kind], "dataset": str(training)} | JOB_DEFAULTS
    given = {
        "num_train_epochs": hyperparameters.n_epochs,
        "batch_size": hyperparameters.batch_size,
        "learning_rate_multiplier": hyperparameters.learning_rate_multiplier,
        "beta": hyperparameters.beta,
    }
    recipe |= {field: value for field, value in given.items() if value not in (None, "auto")}  # fmt: skip
    if validation is not None:
        recipe["eval_dataset"] = str(validation)
    if request.seed is not None:
        recipe["seed"] = request.seed
    return recipe | extension
