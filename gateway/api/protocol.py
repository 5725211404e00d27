"""The OpenAI protocol as lorag reads it: the request models, fields in the reference's order.

Requests accept fields they do not know (an SDK newer than lorag still works): each unknown
field name is logged once and ignored. Known fields lorag cannot honour (``logprobs``, ``echo``,
``suffix``) are refused with a 400 naming them rather than silently ignored. Each request turns
itself into engine inputs (:meth:`engine_inputs`): conversations of ``serve.engine.Message`` and
one ``SamplingParams``. Legacy ``/v1/completions`` sends each prompt as one user turn, so the
base model's chat template applies, as it does for chat. Lorag extensions to OpenAI's schema
are marked ``# extension``; the retrieval extension's options are the knowledge API's own types.
The response objects are in :mod:`gateway.api.objects`. This module knows nothing about
engines' internals or HTTP routes, and loads no index.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.knowledge.retrieval import Filters, MinScore, TopK
from rag.query import DEFAULT_TOP_K, Mode
from serve.engine import Message, SamplingParams

log = logging.getLogger(__name__)
_logged_unknown: set[str] = set()


class _Request(BaseModel):
    """A request body: unknown fields are kept aside, logged once per name, and otherwise ignored."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_unknown(self):
        for name in (self.model_extra or {}).keys() - _logged_unknown:
            _logged_unknown.add(name)
            log.warning("ignoring request field '%s' unknown to lorag (logged once)", name)
        return self


def _stop_list(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError("must be a string or a list of strings")
    if len(value) > 4:
        raise ValueError("at most 4 stop sequences")
    return [s for s in value if s]


def _prompts(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise ValueError("must be a string or a non-empty list of strings (token ids are not supported)")
    return value


def _unsupported(cls, value: Any) -> Any:
    if value:
        raise ValueError("not supported by lorag")
    return value


Seed = Annotated[int | None, Field(ge=-(2**63), le=2**63 - 1, description="A 64-bit integer.")]
LogitBias = Annotated[
    dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], Annotated[float, Field(ge=-100, le=100)]] | None,
    Field(max_length=300, description="Token id -> a bias from -100 to 100 added to its logit (OpenAI's)."),
]
TopKTokens = Annotated[int, Field(ge=-1, description="Sample from the k likeliest tokens; 0 or -1: all (vLLM's).")]
MinP = Annotated[float, Field(ge=0, le=1, description="Drop tokens below this share of the likeliest one (vLLM's).")]
RepetitionPenalty = Annotated[
    float, Field(gt=0, le=10, description="Divide the logits of tokens already seen by this; 1: none (vLLM's).")
]
Stop = Annotated[str | list[str] | None, BeforeValidator(_stop_list)]
Prompt = Annotated[str | list[str], BeforeValidator(_prompts)]


class StreamOptions(BaseModel):
    include_usage: bool = False


class RagOptions(BaseModel):
    """Extension: retrieval for a chat. ``model="<m>@<kb>"`` is the same as ``{"kb": "<kb>"}`` with defaults."""

    model_config = ConfigDict(extra="forbid")

    kb: str | None = Field(None, description="Knowledge base to retrieve from; may come from the model name instead.")
    top_k: TopK = DEFAULT_TOP_K
    mode: Mode = "hybrid"
    min_score: MinScore = None
    filters: Filters = Field(default_factory=dict)


class ChatMessage(BaseModel):
    """One input message; content is a string or a list of text parts."""

    role: Literal["developer", "system", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            texts = []
            for part in value:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise ValueError(f"only text content parts are supported, got '{kind}'")
                texts.append(part["text"])
            return "".join(texts)
        if value is not None and not isinstance(value, str):
            raise ValueError("must be a string or a list of text parts")
        return value

    def to_engine(self) -> Message:
        return Message("system" if self.role == "developer" else self.role, self.content or "")


class _Sampling(_Request):
    """The sampling fields chat and legacy completions share (declared in each subclass's order)."""

    def sampling(self, max_tokens: int | None) -> SamplingParams:
        params = {} if max_tokens is None else {"max_tokens": max_tokens}
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=tuple(self.stop or ()),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=tuple((int(token), bias) for token, bias in (self.logit_bias or {}).items()),
            top_k=max(self.top_k, 0),
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            **params,
        )

    @field_validator("stream_options", check_fields=False)
    @classmethod
    def _stream_options_need_stream(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("only allowed when stream is true")
        return value


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: LogitBias = None
    logprobs: bool = Field(False, description="Not supported: must be false.")
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI; max_completion_tokens wins.")
    n: int = Field(1, ge=1, le=16)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    seed: Seed = None
    stop: Stop = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, ge=0, le=1)
    user: str | None = None
    top_k: TopKTokens = 0  # extension (vLLM's)
    min_p: MinP = 0.0  # extension (vLLM's)
    repetition_penalty: RepetitionPenalty = 1.0  # extension (vLLM's)
    rag: RagOptions | None = None  # extension

    _refuse_unsupported = field_validator("logprobs")(_unsupported)

    def engine_inputs(self) -> tuple[list[list[Message]], SamplingParams]:
        max_tokens = self.max_completion_tokens or self.max_tokens
        return [[m.to_engine() for m in self.messages]], self.sampling(max_tokens)


class CompletionRequest(_Sampling):
    """POST /v1/completions (legacy): each prompt is sent as one user turn through the chat template."""

    model: str
    prompt: Prompt
    echo: bool = Field(False, description="Not supported: must be false.")
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: LogitBias = None
    logprobs: int | None = Field(None, description="Not supported: must be null.")
    max_tokens: int = Field(16, ge=1)
    n: int = Field(1, ge=1, le=16)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    seed: Seed = None
    stop: Stop = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    suffix: str | None = Field(None, description="Not supported: must be null.")
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, ge=0, le=1)
    user: str | None = None
    top_k: TopKTokens = 0  # extension (vLLM's)
    min_p: MinP = 0.0  # extension (vLLM's)
    repetition_penalty: RepetitionPenalty = 1.0  # extension (vLLM's)

    _refuse_unsupported = field_validator("echo", "logprobs", "suffix")(_unsupported)

    def engine_inputs(self) -> tuple[list[list[Message]], SamplingParams]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        return [[Message("user", p)] for p in prompts], self.sampling(self.max_tokens)
