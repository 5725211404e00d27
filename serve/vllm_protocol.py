"""vLLM's OpenAI wire format as the VllmEngine speaks it: a request's body; the deltas, replies and errors back.

Structured outputs go in vLLM's ``structured_outputs`` extension, the schema with lorag's default
bounds (:mod:`serve.schema_bounds`), asking for ``disable_any_whitespace``. vLLM 0.32's xgrammar
backend reads that option only from the server's configuration, so its replies may hold
whitespace; lorag leaves the server's default on purpose: forced on, vLLM writes JSON with no
space after ``,`` and ``:``, and SmolLM2 then parsed and filled fewer schemas
(docs/results/structured_outputs.md). Log-probabilities are asked for as OpenAI's chat ``logprobs``/``top_logprobs``
and read back as :class:`serve.engine.TokenLogprob`. This module knows nothing about processes,
replicas or adapters; it imports no vLLM.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import orjson

from serve.engine import Delta, Generation, Message, SamplingParams, TokenLogprob
from serve.schema_bounds import bounded_text


def request_body(model: str, messages: list[Message], params: SamplingParams, stream: bool = True) -> dict:
    """The JSON body of a ``/v1/chat/completions`` request to vLLM, streamed (with usage at the end) or not."""
    body = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}  # vLLM refuses stream_options on a request not streamed
    if params.seed is not None:
        body["seed"] = params.seed
    bias = {str(token): value for token, value in params.logit_bias}
    body |= {k: v for k, v in {"top_k": params.top_k, "min_p": params.min_p, "logit_bias": bias}.items() if v}
    if params.repetition_penalty != 1.0:
        body["repetition_penalty"] = params.repetition_penalty
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logprobs is not None:
        body |= {"logprobs": True, "top_logprobs": params.logprobs}
    if params.json_schema is not None:
        schema = json.loads(bounded_text(params.json_schema))
        body["structured_outputs"] = {"json": schema, "disable_any_whitespace": True}
    return body


def generation(reply: dict) -> Generation:
    """The :class:`~serve.engine.Generation` of a whole (not streamed) reply of one choice."""
    choice, usage = reply["choices"][0], reply.get("usage") or {}
    text = (choice.get("message") or {}).get("content") or ""
    finish = choice.get("finish_reason") or "stop"
    return Generation(
        text, finish, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), choice_logprobs(choice)
    )


def choice_logprobs(choice: dict) -> list[TokenLogprob]:
    """The tokens of one choice's ``logprobs.content``, streamed or whole."""
    content = (choice.get("logprobs") or {}).get("content") or []
    return [
        TokenLogprob(
            entry["token"],
            float(entry["logprob"]),
            tuple((top["token"], float(top["logprob"])) for top in entry.get("top_logprobs") or ()),
        )
        for entry in content
    ]


async def stream_deltas(content: aiohttp.StreamReader) -> AsyncIterator[Delta]:
    """The deltas of a streamed reply of one choice as its events arrive; the last, with the finish reason and the
    token counts of the usage event, once the body has been read to its end (so its connection goes back to the
    pool)."""
    events = _Events()
    async for data in content.iter_any():
        for delta in events.feed(data):
            yield delta
    for delta in events.feed(b"\n"):  # a last line without its end
        yield delta
    counts = (events.usage["prompt_tokens"], events.usage["completion_tokens"]) if events.usage else ()
    yield Delta("", events.finish or "stop", *counts)


class _Events:
    """A stream's server-sent events read so far: the part line not ended yet, the finish reason, the usage."""

    def __init__(self) -> None:
        self.pending, self.finish, self.usage = b"", None, None

    def feed(self, data: bytes) -> list[Delta]:
        """The deltas of the ``data: {...}`` lines that ``data`` ends (lines may be of any length)."""
        *lines, self.pending = (self.pending + data).split(b"\n")
        deltas = []
        for line in lines:
            if not line.startswith(b"data: ") or line.rstrip(b"\r") == b"data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])  # a trailing \r is JSON whitespace
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content") or ""
                self.finish = choice.get("finish_reason") or self.finish
                if text or choice.get("logprobs"):
                    deltas.append(Delta(text, logprobs=choice_logprobs(choice)))
            self.usage = chunk.get("usage") or self.usage
        return deltas


def error_message(body: str) -> str:
    """The message of an OpenAI error body, or the body itself."""
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body
