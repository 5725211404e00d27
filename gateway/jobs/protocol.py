"""OpenAI's files and fine-tuning wire models, as lorag takes and sends them; fields in the reference's order.

Requests: :class:`JobCreate` with OpenAI's ``method`` (``supervised``, ``dpo`` or ``reinforcement`` with
its grader, with their hyperparameters, ``"auto"`` allowed) and lorag's extension ``lorag`` (any recipe field: another
method such as ``kto``, a tuning type, LoRA settings). Responses: :class:`FileObject`,
:class:`Job`, :class:`JobEvent`, :class:`Checkpoint` and the paginated :class:`Page`. Lorag
extensions are marked ``# extension``. This module knows nothing about storage or training.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gateway.metadata import Metadata

T = TypeVar("T")
Auto = Literal["auto"]
JobStatus = Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]
FINISHED = ("succeeded", "failed", "cancelled")


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    status_details: str | None = None
    format: str | None = None  # extension: the data format lorag detected (openai, preference, ...)
    rows: int | None = None  # extension: rows checked
    methods: list[str] = []  # extension: the methods that train on this format


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class Page(BaseModel, Generic[T]):
    """One page of a list: newest first (files: as ``order`` says), ``after`` the last id of the page before."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class Hyperparameters(BaseModel):
    """OpenAI's hyperparameters; ``beta`` only for DPO. ``"auto"`` is resolved when the job is created."""

    model_config = ConfigDict(extra="forbid")

    batch_size: Annotated[int, Field(ge=1, le=1024)] | Auto = Field("auto", description="Examples per step; auto: 4.")
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=1000)] | Auto = Field(
        "auto", description="Scales the learning rate the tuner's auto policy chooses from the data and the model."
    )
    n_epochs: Annotated[int, Field(ge=1, le=10000)] | Auto = Field(
        "auto", description="Passes over the file; auto: chosen from the number of rows (docs/training.md)."
    )
    beta: Annotated[float, Field(gt=0, le=100)] | Auto | None = Field(None, description="DPO: distance from the base.")


class MethodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters = Hyperparameters()


class ReinforcementHyperparameters(BaseModel):
    """OpenAI's reinforcement fine-tuning hyperparameters; each maps onto GRPO's (docs/fine-tuning-api.md)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: Annotated[int, Field(ge=1, le=1024)] | Auto = "auto"
    compute_multiplier: Annotated[float, Field(gt=0, le=16)] | Auto = Field(
        "auto", description="Samples per prompt: 4 times this (at least 2); auto: 4."
    )
    eval_interval: Annotated[int, Field(ge=1, le=1_000_000)] | Auto = Field(
        "auto", description="Training steps between rewards on the validation file; auto: once, at the end."
    )
    eval_samples: Annotated[int, Field(ge=1, le=64)] | Auto = Field(
        "auto", description="Samples per validation prompt; auto: as many as in training."
    )
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=1000)] | Auto = "auto"
    n_epochs: Annotated[int, Field(ge=1, le=10000)] | Auto = "auto"
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = None


class ReinforcementSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any] = Field(description="The grader, in OpenAI's shape; checked as graders/validate does.")
    hyperparameters: ReinforcementHyperparameters = ReinforcementHyperparameters()
    response_format: dict[str, Any] | None = Field(
        None, description="{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}: every sampled "
        "answer is JSON valid against the schema (graders read it as sample.output_json).",
    )  # fmt: skip


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodSettings | None = None
    dpo: MethodSettings | None = None
    reinforcement: ReinforcementSettings | None = None


class JobCreate(BaseModel):
    """``POST /v1/fine_tuning/jobs``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The base model lorag serves: the adapter is trained on it and served with it.")
    training_file: str = Field("", description="The id of a 'fine-tune' file; '' for a retriever job.")
    hyperparameters: Hyperparameters | None = Field(None, description="Deprecated by OpenAI: use method.")
    suffix: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    validation_file: str | None = None
    integrations: list[dict] | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    method: Method | None = None
    metadata: Metadata | None = None
    lorag: dict[str, Any] | None = Field(
        None,
        description="Extension: recipe fields of lorag's tuner, e.g. {'method': 'kto', 'peft_method': 'dora', "
        "'lora_r': 16}; see docs/training.md.",
    )


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class ResolvedHyperparameters(BaseModel):
    """A job's hyperparameters: ``"auto"`` until training starts and the tuner says what it chose, as OpenAI shows."""

    batch_size: int | Auto
    learning_rate_multiplier: float | Auto
    n_epochs: int | Auto
    beta: float | Auto | None = Field(None, exclude_if=lambda v: v is None)
    compute_multiplier: float | Auto | None = Field(None, exclude_if=lambda v: v is None)
    eval_interval: int | Auto | None = Field(None, exclude_if=lambda v: v is None)
    eval_samples: int | Auto | None = Field(None, exclude_if=lambda v: v is None)
    reasoning_effort: str | None = Field(None, exclude_if=lambda v: v is None)


class Job(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: ResolvedHyperparameters
    model: str
    organization_id: str = "lorag"
    result_files: list[str] = []
    seed: int
    status: JobStatus
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict] | None = None
    metadata: dict[str, str] | None = None
    method: dict
    user_provided_suffix: str | None = None
    lorag: dict[str, Any] | None = None  # extension: the recipe fields the job was created with


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict | None = None
    type: Literal["message", "metrics"] = "message"


class CheckpointMetrics(BaseModel):
    step: int
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    train_reward_mean: float | None = None  # reinforcement: the mean reward of the step's samples
    valid_reward_mean: float | None = None  # reinforcement: the mean reward on the validation file


class Checkpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int
