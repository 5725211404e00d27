"""OpenAI's response objects for one completion request: whole, or as server-sent event chunks.

:class:`Choices` gathers what the choices of a request produced (text, tokens and their
log-probabilities, finish reasons, token counts); :class:`ChatObjects` and :class:`TextObjects`
turn it into chat or legacy completion objects, whole or chunk by chunk (``data: ...`` lines);
a chat's tool calls are read from its text by :class:`gateway.api.tool_calls.ToolStream`. This
module knows nothing about engines' internals, metrics or HTTP.
"""

from __future__ import annotations

import json

import orjson

from gateway.api.knowledge_protocol import Citation
from gateway.api.objects import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceLogprobs,
    ChunkChoice,
    ChunkDelta,
    Completion,
    TextChoice,
    TextLogprobs,
    TopLogprob,
    Usage,
    new_id,
    now,
)
from gateway.api.objects import TokenLogprob as ChatTokenLogprob
from gateway.api.tool_calls import ToolStream, ToolUse, merged
from serve.engine import Delta, TokenLogprob


class Choices:
    """What the choices of one request produced so far: text, tokens, finish reasons, token counts."""

    def __init__(self, count: int, n: int):
        self.n = n
        self.texts: list[list[str]] = [[] for _ in range(count)]
        self.tokens: list[list[TokenLogprob]] = [[] for _ in range(count)]
        self.finish: list[str] = ["stop"] * count
        self.prompt_tokens = [0] * count
        self.completion_tokens = [0] * count

    def add(self, index: int, delta: Delta) -> None:
        self.texts[index].append(delta.text)
        self.tokens[index] += delta.logprobs
        if delta.finish_reason:
            self.finish[index] = delta.finish_reason
            self.prompt_tokens[index], self.completion_tokens[index] = delta.prompt_tokens, delta.completion_tokens

    def text(self, index: int) -> str:
        return "".join(self.texts[index])

    def usage(self) -> Usage:
        prompt = sum(self.prompt_tokens[:: self.n])  # each prompt once, however many choices it has
        completion = sum(self.completion_tokens)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


_MARK = "\x00lorag-text\x00"


def _text_only(piece: ChunkDelta) -> bool:
    return piece.content is not None and piece.role is None and piece.tool_calls is None


def sse(data: str) -> str:
    return f"data: {data}\n\n"


def _chat_logprobs(tokens: list[TokenLogprob], asked: bool) -> ChoiceLogprobs | None:
    if not asked:
        return None
    return ChoiceLogprobs(
        content=[
            ChatTokenLogprob(
                token=t.token, logprob=t.logprob, bytes=list(t.token.encode()),
                top_logprobs=[TopLogprob(token=k, logprob=v, bytes=list(k.encode())) for k, v in t.top],
            )
            for t in tokens
        ]
    )  # fmt: skip


class ChatObjects:
    """OpenAI's chat completion objects for one response; tool calls are read from each choice's text."""

    endpoint = "chat.completions"

    def __init__(
        self, model: str, citations: list[Citation] | None = None, tools: ToolUse | None = None, logprobs: bool = False
    ):
        self.id, self.created, self.model = new_id("chatcmpl"), now(), model
        self.citations, self.tools, self.logprobs = citations, tools, logprobs
        self.streams: dict[int, ToolStream] = {}
        self.text_chunks: dict[int, tuple[str, str]] = {}  # choice -> its text chunk, split where the text goes

    def whole(self, choices: Choices) -> ChatCompletion:
        out = []
        for i in range(len(choices.texts)):
            stream = ToolStream(self.tools)
            deltas = stream.feed(choices.text(i))
            last, finish = stream.finish(choices.finish[i])
            content, calls = merged(deltas + last)
            message = AssistantMessage(content=content, tool_calls=calls)
            logprobs = _chat_logprobs(choices.tokens[i], self.logprobs)
            out.append(ChatChoice(index=i, message=message, finish_reason=finish, logprobs=logprobs))
        return ChatCompletion(
            id=self.id, created=self.created, model=self.model, usage=choices.usage(), citations=self.citations,
            choices=out,
        )  # fmt: skip

    def opening(self, count: int) -> list[str]:
        """The role chunk of each choice; the first also carries the citations."""
        return [
            self._chunk([ChunkChoice(index=i, delta=ChunkDelta(role="assistant", content=""))], None, i == 0)
            for i in range(count)
        ]

    def chunks(self, index: int, delta: Delta) -> list[str]:
        """The chunks of one engine delta of choice ``index``: its text or tool-call pieces, then its finish."""
        if self.tools is None and not delta.logprobs and not delta.finish_reason:  # plain text, most deltas
            return [self._text_chunk(index, delta.text)] if delta.text else []
        stream = self.streams.setdefault(index, ToolStream(self.tools))
        pieces = stream.feed(delta.text)
        logprobs = _chat_logprobs(delta.logprobs, self.logprobs) if delta.logprobs else None
        if logprobs and not pieces:
            pieces = [ChunkDelta(content="")]  # tokens whose text is held back still report their logprobs
        if not logprobs and not delta.finish_reason and all(_text_only(p) for p in pieces):
            return [self._text_chunk(index, p.content) for p in pieces]
        out = [ChunkChoice(index=index, delta=p, logprobs=logprobs if k == 0 else None) for k, p in enumerate(pieces)]
        if delta.finish_reason:
            last, finish = stream.finish(delta.finish_reason)
            out += [ChunkChoice(index=index, delta=p) for p in last]
            out.append(ChunkChoice(index=index, delta=ChunkDelta(), finish_reason=finish))
        return [self._chunk([choice]) for choice in out]

    def usage_chunk(self, usage: Usage) -> str:
        return self._chunk([], usage)

    def _text_chunk(self, index: int, text: str) -> str:
        """The chunk of a piece of plain text: the wire model's own JSON for choice ``index``, made once with a
        marker where the text goes, and the text's JSON string put there (most chunks are these)."""
        if index not in self.text_chunks:
            whole = self._chunk([ChunkChoice(index=index, delta=ChunkDelta(content=_MARK))])
            head, tail = whole.split(json.dumps(_MARK))
            self.text_chunks[index] = head, tail
        head, tail = self.text_chunks[index]
        return head + orjson.dumps(text).decode() + tail  # the same JSON string as pydantic's

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None, cite: bool = False) -> str:
        chunk = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage,
            citations=self.citations if cite else None,
        )  # fmt: skip
        return chunk.model_dump_json()


class TextObjects:
    """OpenAI's legacy text completion objects for one response."""

    endpoint = "completions"

    def __init__(self, model: str, logprobs: bool = False):
        self.id, self.created, self.model = new_id("cmpl"), now(), model
        self.logprobs = logprobs
        self.offsets: dict[int, int] = {}  # characters of each choice's tokens already listed

    def whole(self, choices: Choices) -> Completion:
        texts = [
            TextChoice(
                index=i, text=choices.text(i), finish_reason=choices.finish[i],
                logprobs=self._logprobs(i, choices.tokens[i]) if self.logprobs else None,
            )
            for i in range(len(choices.texts))
        ]  # fmt: skip
        return Completion(id=self.id, created=self.created, model=self.model, choices=texts, usage=choices.usage())

    def opening(self, count: int) -> list[str]:
        return []

    def chunks(self, index: int, delta: Delta) -> list[str]:
        if not (delta.text or delta.finish_reason or delta.logprobs):
            return []
        logprobs = self._logprobs(index, delta.logprobs) if self.logprobs else None
        choice = TextChoice(index=index, text=delta.text, finish_reason=delta.finish_reason, logprobs=logprobs)
        return [self._chunk([choice])]

    def _logprobs(self, index: int, tokens: list[TokenLogprob]) -> TextLogprobs:
        offsets, at = [], self.offsets.get(index, 0)
        for t in tokens:
            offsets.append(at)
            at += len(t.token)
        self.offsets[index] = at
        return TextLogprobs(
            text_offset=offsets, token_logprobs=[t.logprob for t in tokens], tokens=[t.token for t in tokens],
            top_logprobs=[dict(t.top) for t in tokens],
        )  # fmt: skip

    def usage_chunk(self, usage: Usage) -> str:
        return self._chunk([], usage)

    def _chunk(self, choices: list[TextChoice], usage: Usage | None = None) -> str:
        return Completion(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        ).model_dump_json()
