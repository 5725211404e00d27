"""The OpenAI protocol as lorag reads it: the request models, fields in the reference's order.

Requests accept fields they do not know (an SDK newer than lorag still works): each unknown
field name is logged once and ignored. Known fields lorag cannot honour (``audio``, ``functions``,
``echo``, ...) are refused with a 400 naming them rather than silently ignored. Each request turns
itself into engine inputs (:meth:`engine_inputs`): conversations of ``serve.engine.Message``
(tools, or the response format's schema, described in the system message) and one
``SamplingParams`` (with the JSON schema that constrains the reply, from ``response_format`` or
a forced tool call). Legacy ``/v1/completions`` sends each
prompt as one user turn, so the base model's chat template applies, as it does for chat. Lorag
extensions to OpenAI's schema are marked ``# extension``; the retrieval extension's options are
the knowledge API's own types. The response objects are in :mod:`gateway.api.objects`. This
module knows nothing about engines' internals or HTTP routes, and loads no index.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.api.messages import ChatMessage
from gateway.api.tool_calls import ToolUse, add_system
from gateway.api.tool_protocol import ResponseFormat, Tool, ToolChoice
from gateway.knowledge.retrieval import RetrievalFields
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


MAX_STOP_CHARS = 256
"""The longest stop sequence a request may give (OpenAI gives no figure; a few words is the use)."""


def _stop_list(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError("must be a string or a list of strings")
    if len(value) > 4:
        raise ValueError("at most 4 stop sequences")
    if any(len(s) > MAX_STOP_CHARS for s in value):
        raise ValueError(f"a stop sequence is at most {MAX_STOP_CHARS} characters")
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


class RagOptions(RetrievalFields):
    """Extension: retrieval for a chat. ``model="<m>@<kb>"`` is the same as ``{"kb": "<kb>"}`` with defaults."""

    model_config = ConfigDict(extra="forbid")

    kb: str | None = Field(None, description="Knowledge base to retrieve from; may come from the model name instead.")


class _Sampling(_Request):
    """The sampling fields chat and legacy completions share (declared in each subclass's order)."""

    def sampling(self, max_tokens: int | None, logprobs: int | None, json_schema: str | None) -> SamplingParams:
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
            logprobs=logprobs,
            json_schema=json_schema,
            **params,
        )

    @field_validator("stream_options", check_fields=False)
    @classmethod
    def _stream_options_need_stream(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("only allowed when stream is true")
        return value


NOT_SUPPORTED = "Not supported by lorag: must be absent or null."
ACCEPTED = "Accepted; has no effect in lorag."


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    audio: dict | None = Field(None, description=NOT_SUPPORTED)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    function_call: Any = Field(None, description=NOT_SUPPORTED + " Use tool_choice.")
    functions: list | None = Field(None, description=NOT_SUPPORTED + " Use tools.")
    logit_bias: LogitBias = None
    logprobs: bool = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI; max_completion_tokens wins.")
    metadata: dict[str, str] | None = Field(None, description=ACCEPTED)
    modalities: list[Literal["text"]] | None = Field(None, description='Only ["text"].')
    n: int = Field(1, ge=1, le=16)
    parallel_tool_calls: bool = Field(True, description="With tool_choice auto, every call the reply holds is read.")
    prediction: dict | None = Field(None, description=NOT_SUPPORTED)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    prompt_cache_key: str | None = Field(None, description=ACCEPTED)
    reasoning_effort: str | None = Field(None, description=NOT_SUPPORTED)
    response_format: ResponseFormat | None = None
    safety_identifier: str | None = Field(None, description=ACCEPTED)
    seed: Seed = None
    service_tier: str | None = Field(None, description=ACCEPTED)
    stop: Stop = None
    store: bool | None = Field(None, description=ACCEPTED)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    tool_choice: ToolChoice | None = None
    tools: list[Tool] | None = Field(None, max_length=128, validate_default=True)
    top_logprobs: int | None = Field(None, ge=0, le=20, description="Needs logprobs: true.")
    top_p: float = Field(1.0, ge=0, le=1)
    user: str | None = None
    verbosity: str | None = Field(None, description=NOT_SUPPORTED)
    web_search_options: dict | None = Field(None, description=NOT_SUPPORTED)
    top_k: TopKTokens = 0  # extension (vLLM's)
    min_p: MinP = 0.0  # extension (vLLM's)
    repetition_penalty: RepetitionPenalty = 1.0  # extension (vLLM's)
    rag: RagOptions | None = None  # extension

    _refuse_unsupported = field_validator(
        "audio", "function_call", "functions", "prediction", "reasoning_effort", "verbosity", "web_search_options"
    )(_unsupported)

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("needs logprobs: true")
        return value

    @field_validator("tools")
    @classmethod
    def _tools_fit_their_choice(cls, tools: list[Tool] | None, info: ValidationInfo) -> list[Tool] | None:
        use = ToolUse.of(tools, info.data.get("tool_choice"))
        response_format = info.data.get("response_format")
        if use and response_format and response_format.type != "text":
            raise ValueError("tools cannot be combined with a JSON response_format unless tool_choice is 'none'")
        return tools

    @property
    def tool_use(self) -> ToolUse | None:
        return ToolUse.of(self.tools, self.tool_choice)

    def engine_inputs(self) -> tuple[list[list[Message]], SamplingParams]:
        max_tokens = self.max_completion_tokens or self.max_tokens
        messages = [m.to_engine() for m in self.messages]
        schema = None
        if self.response_format is not None and self.response_format.type != "text":
            messages = add_system(messages, self.response_format.instruction())
            schema = self.response_format.schema_text()
        if self.tool_use is not None:
            messages, schema = self.tool_use.prompt(messages), self.tool_use.schema()
        logprobs = (self.top_logprobs or 0) if self.logprobs else None
        return [messages], self.sampling(max_tokens, logprobs, schema)


class CompletionRequest(_Sampling):
    """POST /v1/completions (legacy): each prompt is sent as one user turn through the chat template."""

    model: str
    prompt: Prompt
    best_of: int | None = Field(None, ge=1, le=1, description="Only 1.")
    echo: bool = Field(False, description=NOT_SUPPORTED)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: LogitBias = None
    logprobs: int | None = Field(None, ge=0, le=5, description="The likeliest tokens to list at each position.")
    max_tokens: int = Field(16, ge=1)
    n: int = Field(1, ge=1, le=16)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    seed: Seed = None
    stop: Stop = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    suffix: str | None = Field(None, description=NOT_SUPPORTED)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, ge=0, le=1)
    user: str | None = None
    top_k: TopKTokens = 0  # extension (vLLM's)
    min_p: MinP = 0.0  # extension (vLLM's)
    repetition_penalty: RepetitionPenalty = 1.0  # extension (vLLM's)

    _refuse_unsupported = field_validator("echo", "suffix")(_unsupported)

    def engine_inputs(self) -> tuple[list[list[Message]], SamplingParams]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        return [[Message("user", p)] for p in prompts], self.sampling(self.max_tokens, self.logprobs, None)
