"""vLLM's OpenAI wire format as the VllmEngine speaks it: a request's body; the lines, deltas, replies and errors back.

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

from serve.engine import Generation, Message, SamplingParams, TokenLogprob
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


async def body_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of a response body as they arrive, without their line ends, however long."""
    pending = b""
    async for data in content.iter_any():
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")


def error_message(body: str) -> str:
    """The message of an OpenAI error body, or the body itself."""
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body
