"""OpenAI's response objects as lorag sends them: completions, chunks, models, errors; fields in the reference's order.

Lorag extensions are marked ``# extension``. This module knows nothing about requests or routes.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from gateway.api.knowledge_protocol import Citation
from gateway.api.tool_protocol import ToolCall


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    """A chat choice's tokens with their log-probabilities (``logprobs: true``)."""

    content: list[TokenLogprob] | None
    refusal: None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCall] | None = Field(None, exclude_if=lambda v: v is None)


class ChatChoice(BaseModel):
    finish_reason: str
    index: int
    logprobs: ChoiceLogprobs | None = None
    message: AssistantMessage


Citations = Annotated[list[Citation] | None, Field(exclude_if=lambda v: v is None)]


class ChatCompletion(BaseModel):
    id: str
    choices: list[ChatChoice]
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None
    usage: Usage
    citations: Citations = None  # extension: the sources of a retrieval-augmented answer


class FunctionCallDelta(BaseModel):
    name: str | None = Field(None, exclude_if=lambda v: v is None)
    arguments: str = ""


class ToolCallDelta(BaseModel):
    """A streamed tool call: the first piece has ``id``, ``type`` and the name, the next ones argument text."""

    index: int
    id: str | None = Field(None, exclude_if=lambda v: v is None)
    type: Literal["function"] | None = Field(None, exclude_if=lambda v: v is None)
    function: FunctionCallDelta


class ChunkDelta(BaseModel):
    """The fields a chunk carries: ``role`` first, then ``content`` or ``tool_calls``, nothing on the last."""

    content: str | None = Field(None, exclude_if=lambda v: v is None)
    role: Literal["assistant"] | None = Field(None, exclude_if=lambda v: v is None)
    tool_calls: list[ToolCallDelta] | None = Field(None, exclude_if=lambda v: v is None)


class ChunkChoice(BaseModel):
    delta: ChunkDelta
    finish_reason: str | None = None
    index: int
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: Usage | None = None
    citations: Citations = None  # extension: on the first chunk of a retrieval-augmented answer


class TextLogprobs(BaseModel):
    """A legacy completion's tokens with their log-probabilities (``logprobs: k``)."""

    text_offset: list[int]
    token_logprobs: list[float]
    tokens: list[str]
    top_logprobs: list[dict[str, float]]


class TextChoice(BaseModel):
    finish_reason: str | None
    index: int
    logprobs: TextLogprobs | None = None
    text: str


class Completion(BaseModel):
    """A legacy completion; streamed chunks have the same shape, ``usage`` only on the last."""

    id: str
    choices: list[TextChoice]
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    system_fingerprint: str | None = None
    usage: Usage | None = None


class ModelCard(BaseModel):
    """GET /v1/models entries: ``root`` is the base model, ``parent`` the model an adapter was trained on."""

    id: str
    created: int
    object: Literal["model"] = "model"
    owned_by: str = "lorag"
    root: str  # extension (as in vLLM and OpenAI's older fine-tuning API)
    parent: str | None = None  # extension
    knowledge_base: str | None = Field(None, exclude_if=lambda v: v is None)  # extension: of a <model>@<kb> arm


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
