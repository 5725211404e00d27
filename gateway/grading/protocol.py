"""The graders API's wire models, as OpenAI has them: ``run`` takes a grader, a model sample and an item.

The grader itself is checked by the ``graders`` package (:func:`graders.validate_grader`), which names the
field of a bad one; this module only bounds the request. This module knows nothing about running graders.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GraderRun(BaseModel):
    """``POST /v1/fine_tuning/alpha/graders/run``."""

    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any] = Field(description="The grader: string_check, text_similarity, score_model, "
                                   "label_model, python or multi, in OpenAI's shape.")  # fmt: skip
    model_sample: str = Field(max_length=1_000_000, description="The model's answer: the `sample` namespace.")
    item: Any = Field(None, description="The data row: the `item` namespace.")


class GraderValidate(BaseModel):
    """``POST /v1/fine_tuning/alpha/graders/validate``."""

    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any]


class GraderValidated(BaseModel):
    grader: dict[str, Any]
