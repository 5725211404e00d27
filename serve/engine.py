"""The engine seam: one small Protocol, the values that cross it, and ``load_engine``.

Two implementations, no shared base class: ``serve.vllm_engine.VllmEngine`` (vLLM's OpenAI
server as a child process, or running replicas reached over HTTP) and
``serve.local_engine.LocalEngine`` (transformers + peft in this process). Engines take chat
messages whose content is plain text; formatting them with the chat template is the engine's
job, so that the template saved with the model is the only one in use.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from serve.adapters import AdapterSpec, EngineLimits

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The engine cannot serve a request right now (not started, crashed, unreachable)."""


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


@dataclass
class Delta:
    """A piece of a streamed completion; the last one has ``finish_reason`` and the token counts."""

    text: str
    finish_reason: str | None = None  # "stop" (end of turn or a stop sequence) | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


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


async def collect(deltas: AsyncIterator[Delta]) -> Generation:
    """A whole completion from a stream of deltas: how every engine implements ``generate``."""
    text, last = [], Delta("")
    async for delta in deltas:
        text.append(delta.text)
        last = delta
    return Generation("".join(text), last.finish_reason or "stop", last.prompt_tokens, last.completion_tokens)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None
