"""The engine seam: one small Protocol, the values that cross it, and the adapter sync.

Two implementations, no shared base class: ``serve.vllm_engine.VllmEngine`` (vLLM's OpenAI
server as a child process, or running replicas reached over HTTP) and
``serve.local_engine.LocalEngine`` (transformers + peft in this process). Engines take chat
messages whose content is plain text; formatting them with the chat template is the engine's
job, so that the template saved with the model is the only one in use. Which engine a
configuration gets is ``serve.engines``' business; this module imports no engine.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from serve.adapters import AdapterRegistry, AdapterSpec, EngineLimits, Scan

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The engine cannot serve a request right now (not started, crashed, unreachable)."""


class InvalidRequest(ValueError):
    """The engine refused a request as invalid (e.g. a prompt longer than the context): the caller's fault."""


class ContextLengthExceeded(InvalidRequest):
    """The prompt plus the completion asked for are longer than the model's context window."""


class UnknownAdapter(KeyError):
    """A request named an adapter the engine has not loaded."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion; OpenAI's names and meanings."""

    max_tokens: int = 256
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    top_k: int = 0  # 0: every token
    min_p: float = 0.0
    repetition_penalty: float = 1.0  # vLLM's and transformers' multiplicative penalty; 1: none
    logprobs: int | None = None  # None: none; k: each token's log-probability and its k likeliest alternatives
    json_schema: str | None = None  # JSON text of a schema the completion must validate against


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, log-probability, and the likeliest alternatives at its position."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()  # (token, log-probability), likeliest first


@dataclass
class Delta:
    """A piece of a streamed completion; the last one has ``finish_reason`` and the token counts.

    ``logprobs`` holds the tokens generated since the previous delta, when they were asked for; a
    delta's text and its tokens need not line up exactly (text is held back at stop sequences).
    """

    text: str
    finish_reason: str | None = None  # "stop" (end of turn or a stop sequence) | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Message:
    role: str  # system | user | assistant
    content: str


@dataclass
class EngineInfo:
    base_model: str  # the name clients use for the base model
    limits: EngineLimits = field(default_factory=EngineLimits)


class Engine(Protocol):
    info: EngineInfo

    def stream(
        self, messages: list[Message], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        """Stream a completion; closing the iterator cancels the work."""
        ...

    async def generate(
        self, messages: list[Message], params: SamplingParams, adapter: str | None = None
    ) -> Generation: ...

    async def load_adapter(self, spec: AdapterSpec) -> None: ...

    async def unload_adapter(self, name: str) -> None: ...

    def adapters(self) -> list[str]: ...

    async def close(self) -> None: ...


def prompt_ids(tokenizer, messages: list[Message]) -> list[int]:
    """The prompt's token ids: ``messages`` rendered by the model's own chat template, ready for the reply."""
    rendered = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def check_context(prompt_tokens: int, max_tokens: int, context: int) -> None:
    """:class:`ContextLengthExceeded`, in OpenAI's words, unless prompt and completion fit the context."""
    if prompt_tokens + max_tokens > context:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion."
        )


async def collect(deltas: AsyncIterator[Delta]) -> Generation:
    """A whole completion from a stream of deltas: how every engine implements ``generate``."""
    text, logprobs, last = [], [], Delta("")
    async for delta in deltas:
        text.append(delta.text)
        logprobs += delta.logprobs
        last = delta
    return Generation("".join(text), last.finish_reason or "stop", last.prompt_tokens, last.completion_tokens, logprobs)


class AdapterSync:
    """Keeps an engine's loaded adapters equal to what the registry finds servable.

    Each :meth:`refresh` loads new adapters, reloads changed ones and unloads those whose folder
    went away or became invalid. One adapter failing to load is recorded as refused; the others
    are unaffected.
    """

    def __init__(self, engine: Engine, registry: AdapterRegistry):
        self.engine = engine
        self.registry = registry
        self.versions: dict[str, str] = {}
        self.refused: dict[str, str] = {}

    async def refresh(self) -> Scan:
        scan = self.registry.scan()
        for name in [n for n in self.versions if n not in scan.adapters]:
            del self.versions[name]
            try:
                await self.engine.unload_adapter(name)
            except (EngineError, UnknownAdapter) as e:  # gone from the engine already, or it is down
                log.warning("adapter %s: unloading failed: %s", name, e)
        for name, spec in scan.adapters.items():
            if self.versions.get(name) == spec.version:
                continue
            try:
                await self.engine.load_adapter(spec)
                self.versions[name] = spec.version
            except EngineError as e:
                self.versions.pop(name, None)
                scan.refused[name] = f"the engine could not load it: {e}"
        for name in scan.refused:
            if self.refused.get(name) != scan.refused[name]:
                log.warning("adapter %s refused: %s", name, scan.refused[name])
        self.refused = scan.refused
        scan.adapters = {n: s for n, s in scan.adapters.items() if n in self.versions}
        return scan
