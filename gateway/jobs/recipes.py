"""A fine-tuning job request turned into a tuner recipe, and OpenAI's ``"auto"`` hyperparameters resolved.

OpenAI's ``method.type`` picks the tuner's method (``supervised`` -> ``sft``, ``dpo`` -> ``dpo``,
``reinforcement`` -> ``grpo`` with the grader as its reward); its hyperparameters become recipe fields
(``n_epochs`` -> ``num_train_epochs``, ``batch_size``, ``learning_rate_multiplier``, ``beta``; for
reinforcement ``compute_multiplier`` -> ``num_generations``, 4 per unit, ``eval_interval`` -> ``eval_steps``,
``eval_samples`` -> ``num_generations_eval``, and ``reasoning_effort`` refused: lorag's models do not reason).
A grader is checked as ``graders/validate`` checks it, python graders refused unless the operator allows them;
a model grader's judge is this gateway, reached by the training process with a key of its own
(:mod:`gateway.jobs.judges`), or its own ``base_url`` where the operator allows it. ``response_format`` (OpenAI's
``json_schema``) is checked by compiling its schema with xgrammar, as the tuner will. A hyperparameter left
``"auto"`` (or out) is left out of the recipe, so the tuner's ``auto`` policy chooses it from the data and the
model; the job shows the value once
training starts (:mod:`gateway.jobs.progress`). The ``lorag`` extension adds the recipe fields
:mod:`gateway.jobs.extension` allows, ``method`` included (``kto``, ``orpo``, ``grpo``), each
bounded; the tuner validates the recipe again when the job is checked. The fields a job sets
itself (its name, data and progress file) cannot be given.
This module knows nothing about storage, processes or HTTP.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.errors import invalid
from gateway.jobs.extension import checked
from gateway.jobs.judges import Judges
from gateway.jobs.protocol import Hyperparameters, JobCreate, ResolvedHyperparameters
from graders import GraderError, requirements, validate_grader

METHODS = {"supervised": "sft", "dpo": "dpo", "reinforcement": "grpo"}
SAMPLES_PER_UNIT = 4
"""Samples per prompt for ``compute_multiplier`` 1 (GRPO's ``num_generations``; lorag's default for grpo too)."""
SET_BY_JOBS = {"name", "model", "dataset", "eval_dataset", "events_file", "overwrite", "resume_from_checkpoint",
               "judge_base_url", "judge_api_key_file"}  # fmt: skip
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
    settings = getattr(request.method, kind)
    if kind == "reinforcement" and settings is None:
        raise invalid("method.reinforcement", "a reinforcement job needs method.reinforcement.grader")
    return kind, settings.hyperparameters if settings else Hyperparameters()


def resolve(kind: str, given: Hyperparameters) -> ResolvedHyperparameters:
    """The job's hyperparameters as created: given values checked, ``"auto"`` kept until the tuner chooses;
    ``beta`` only for DPO."""
    values = given.model_dump()
    effort = values.pop("reasoning_effort", None)
    if effort not in (None, "default"):
        raise invalid("method.reinforcement.hyperparameters.reasoning_effort",
                      "reasoning_effort is for reasoning models; the models lorag serves do not reason")  # fmt: skip
    if kind == "dpo":
        values["beta"] = "auto" if values["beta"] is None else values["beta"]
    elif values.get("beta") is not None:
        raise invalid("method.supervised.hyperparameters.beta", "beta is a DPO hyperparameter")
    for name, value in values.items():
        if value not in (None, "auto") and value <= 0:
            raise invalid(f"method.{kind}.hyperparameters.{name}", f"{name} must be above 0, not {value}")
    return ResolvedHyperparameters(**values)


def check_grader(grader: dict, allow_python: bool, param: str, judges: Judges) -> bool:
    """Whether the grader's judge is this gateway; 400 naming the field for a grader a job cannot train with."""
    try:
        found = validate_grader(grader, allow_python, where=param)
    except GraderError as e:
        raise invalid(e.param, str(e)) from None
    inner = found.named() if found.type == "multi" else {None: found}
    for name, one in inner.items():
        url = getattr(one, "base_url", None)
        if url and not judges.allowed(url):
            where = f"{param}.graders.{name}.base_url" if name else f"{param}.base_url"
            raise invalid(where, "this gateway calls no endpoint outside itself unless its operator allows it "
                                 "(LORAG_OUTBOUND_URLS)")  # fmt: skip
    ours = "default_judge" in requirements(found)
    if ours and judges.url is None:
        raise invalid(param, "a model grader's judge is this gateway, and it does not know the URL its training "
                             "processes reach it at: set LORAG_SELF_URL (`lorag serve` sets it)")  # fmt: skip
    return ours


def check_response_format(response_format: dict, param: str) -> None:
    """400 naming the field for a ``response_format`` that is not OpenAI's ``json_schema`` or does not compile."""
    import xgrammar as xgr

    spec = response_format.get("json_schema")
    if response_format.get("type") != "json_schema" or not isinstance(spec, dict):
        raise invalid(param, "response_format must be {'type': 'json_schema', 'json_schema': {'name': ..., "
                             "'schema': {...}}}")  # fmt: skip
    if not isinstance(spec.get("schema"), dict):
        raise invalid(f"{param}.json_schema.schema", "json_schema.schema must be a JSON schema object")
    try:
        xgr.Grammar.from_json_schema(json.dumps(spec["schema"]), any_whitespace=False, strict_mode=True)
    except Exception as e:  # xgrammar raises RuntimeError or ValueError for schemas it cannot use
        reason = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", str(e).strip().splitlines()[0])  # xgrammar's time and source
        raise invalid(f"{param}.json_schema.schema", f"the JSON schema cannot be compiled: {reason}") from None


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    """``ft:<base>:lorag:<suffix>:<id>``, OpenAI's shape; a base model given as a path or a Hugging Face id is named
    by its last part, and characters a model name cannot hold become ``-``."""
    short = re.sub(r"[^A-Za-z0-9._-]", "-", base.rstrip("/").rsplit("/", 1)[-1])
    return f"ft:{short}:lorag:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}"


def recipe_for(
    request: JobCreate, kind: str, hyperparameters: ResolvedHyperparameters, name: str, training: Path,
    validation: Path | None, admin: bool = False, folders: list[Path] = (), allow_python: bool = False,
    judges: Judges | None = None, key_file: Path | None = None,
) -> dict:  # fmt: skip
    """The recipe fields of the job: its data, OpenAI's hyperparameters, then the ``lorag`` extension (checked
    against :mod:`gateway.jobs.extension`'s allow-list; an admin's paths only inside ``folders``); a model
    grader's judge is this gateway (``judges``), with the key the run will find in ``key_file``."""
    judges = judges or Judges()
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
    ours = False  # whether a model grader's judge is this gateway
    if kind == "reinforcement":
        settings = request.method.reinforcement
        ours = check_grader(settings.grader, allow_python, "method.reinforcement.grader", judges)
        recipe["graders"] = settings.grader
        if settings.response_format is not None:
            check_response_format(settings.response_format, "method.reinforcement.response_format")
            recipe["response_format"] = settings.response_format
        samples = hyperparameters.compute_multiplier
        if samples not in (None, "auto"):
            given["num_generations"] = max(2, round(SAMPLES_PER_UNIT * samples))
        given |= {"eval_steps": hyperparameters.eval_interval, "num_generations_eval": hyperparameters.eval_samples}
        if hyperparameters.batch_size == "auto":  # a step's samples must fill whole groups
            given["batch_size"] = given.get("num_generations", SAMPLES_PER_UNIT)
    elif "graders" in extension:
        ours = check_grader(extension["graders"], allow_python, "lorag.graders", judges)
    if "response_format" in extension:
        check_response_format(extension["response_format"], "lorag.response_format")
    if ours:
        recipe |= {"judge_base_url": f"{judges.url.rstrip('/')}/v1", "judge_api_key_file": str(key_file)}
    recipe |= {field: value for field, value in given.items() if value not in (None, "auto")}  # fmt: skip
    if validation is not None:
        recipe["eval_dataset"] = str(validation)
    if request.seed is not None:
        recipe["seed"] = request.seed
    return recipe | extension
