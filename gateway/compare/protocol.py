"""The wire models of ``/v1/compare``: what a client sends to start a comparison, and the run it follows.

This module knows nothing about how a run is executed or scored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class JudgeSpec(BaseModel):
    """A judge model; without ``base_url``, this gateway serves it."""

    model: str = Field(min_length=1)
    base_url: str | None = Field(None, description="Any OpenAI-compatible API, e.g. https://api.openai.com/v1.")
    api_key: SecretStr | None = Field(None, description="Key for base_url; never stored or echoed.")


class QuestionsFile(BaseModel):
    """A questions file sent inline: JSONL or the Wiki-Newpages QA JSON (see docs/compare.md)."""

    filename: str = Field(min_length=1)
    content: str


class CompareRequest(BaseModel):
    """POST /v1/compare: the arms, the questions (inline or as a file), and how to ask them."""

    arms: list[str] = Field(min_length=1, description="Model names: base, adapter, <model>@<kb>.")
    questions: list[dict[str, Any]] | None = Field(None, description="[{question, answer, id?, context?}]")
    questions_file: QuestionsFile | None = None
    judge: JudgeSpec | None = None
    reward_model: str | None = Field(
        None, description="A reward model (method: reward) in the adapters folder, by name: scores every answer."
    )
    max_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0, le=2)
    concurrency: int = Field(4, ge=1, le=64)
    limit: int | None = Field(None, ge=1, description="Ask a seeded random sample of this many questions.")
    seed: int = Field(0, description="Seed of the sample and of the statistics.")
    system: str | None = Field(None, description="A system prompt sent before every question.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.questions is None) == (self.questions_file is None):
            raise ValueError("give either 'questions' or 'questions_file'")
        return self


class Progress(BaseModel):
    done: int
    total: int


class CompareRun(BaseModel):
    """A comparison started through the API."""

    id: str
    object: Literal["compare.run"] = "compare.run"
    status: Literal["running", "completed", "failed", "cancelled"]
    created: int
    arms: list[str]
    progress: Progress
    summary: list[dict[str, Any]] | None = None  # per arm, once completed (see docs/compare.md)
    error: str | None = None
    report: dict[str, str]  # html, markdown, json, chart: where GET fetches each file once completed
    owner: str | None = None  # the name of the API key that started it: only it (and admins) see the run


class CompareRunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CompareRun]
