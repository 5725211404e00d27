"""OpenAI's response objects for one completion request: whole, or as server-sent event chunks.

:class:`Choices` gathers what the choices of a request produced (text, finish reasons, token
counts); :class:`ChatObjects` and :class:`TextObjects` turn it into chat or legacy completion
objects, whole or chunk by chunk (``data: ...`` lines). This module knows nothing about engines'
internals, metrics or HTTP.
"""

from __future__ import annotations

from gateway.api.knowledge_protocol import Citation
from gateway.api.objects import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    Completion,
    TextChoice,
    Usage,
    new_id,
    now,
)
from serve.engine import Delta


class Choices:
    """What the choices of one request produced so far: text, finish reasons, token counts."""

    def __init__(self, count: int, n: int):
        self.n = n
        self.texts: list[list[str]] = [[] for _ in range(count)]
        self.finish: list[str] = ["stop"] * count
        self.prompt_tokens = [0] * count
        self.completion_tokens = [0] * count

    def add(self, index: int, delta: Delta) -> None:
        self.texts[index].append(delta.text)
        if delta.finish_reason:
            self.finish[index] = delta.finish_reason
            self.prompt_tokens[index], self.completion_tokens[index] = delta.prompt_tokens, delta.completion_tokens

    def text(self, index: int) -> str:
        return "".join(self.texts[index])

    def usage(self) -> Usage:
        prompt = sum(self.prompt_tokens[:: self.n])  # each prompt once, however many choices it has
        completion = sum(self.completion_tokens)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def sse(data: str) -> str:
    return f"data: {data}\n\n"


class ChatObjects:
    """OpenAI's chat completion objects for one response."""

    endpoint = "chat.completions"

    def __init__(self, model: str, citations: list[Citation] | None = None):
        self.id, self.created, self.model = new_id("chatcmpl"), now(), model
        self.citations = citations

    def whole(self, choices: Choices) -> ChatCompletion:
        return ChatCompletion(
            id=self.id, created=self.created, model=self.model, usage=choices.usage(), citations=self.citations,
            choices=[
                ChatChoice(index=i, message=AssistantMessage(content=choices.text(i)), finish_reason=choices.finish[i])
                for i in range(len(choices.texts))
            ],
        )  # fmt: skip

    def opening(self, count: int) -> list[str]:
        """The role chunk of each choice; the first also carries the citations."""
        return [
            self._chunk([ChunkChoice(index=i, delta=ChunkDelta(role="assistant", content=""))], None, i == 0)
            for i in range(count)
        ]

    def chunk(self, index: int, text: str | None, finish_reason: str | None) -> str:
        return self._chunk([ChunkChoice(index=index, delta=ChunkDelta(content=text), finish_reason=finish_reason)])

    def usage_chunk(self, usage: Usage) -> str:
        return self._chunk([], usage)

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None, cite: bool = False) -> str:
        chunk = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage,
            citations=self.citations if cite else None,
        )  # fmt: skip
        return chunk.model_dump_json()


class TextObjects:
    """OpenAI's legacy text completion objects for one response."""

    endpoint = "completions"

    def __init__(self, model: str):
        self.id, self.created, self.model = new_id("cmpl"), now(), model

    def whole(self, choices: Choices) -> Completion:
        texts = [
            TextChoice(index=i, text=choices.text(i), finish_reason=choices.finish[i])
            for i in range(len(choices.texts))
        ]
        return Completion(id=self.id, created=self.created, model=self.model, choices=texts, usage=choices.usage())

    def opening(self, count: int) -> list[str]:
        return []

    def chunk(self, index: int, text: str | None, finish_reason: str | None) -> str:
        return self._chunk([TextChoice(index=index, text=text or "", finish_reason=finish_reason)])

    def usage_chunk(self, usage: Usage) -> str:
        return self._chunk([], usage)

    def _chunk(self, choices: list[TextChoice], usage: Usage | None = None) -> str:
        return Completion(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        ).model_dump_json()
