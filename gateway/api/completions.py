"""Serving completions: a chat or legacy request in, an OpenAI response or server-sent event stream out.

Every choice (``n`` per prompt) runs as its own engine stream, their deltas merged as they come;
a whole response asks the engine for each choice whole (``generate``: the engine's stream
collected, or from vLLM the same request unstreamed, one reply instead of an event per token), so
streamed and non-streamed text are the same. A stream's first delta is awaited before the
response starts, so an unknown adapter or an unavailable engine still gets its proper status; a
failure after that ends the stream with an OpenAI error event. Events leave as an
:class:`~gateway.api.event_stream.EventStream`. A client that goes away cancels every engine
stream of its request (closing an engine's iterator cancels its work). A chat with a knowledge
base (``model="<m>@<kb>"`` or the ``rag`` extension) is augmented by
:meth:`gateway.knowledge.service.Knowledge.augment` before the engine sees it, and its citations
ride on the response (the first chunk, when streaming). Other APIs on the same pipeline
(Responses, :mod:`gateway.responses`) take its seams: :meth:`Completions.resolve`,
:meth:`Completions.retrieval`, :meth:`Completions.deltas` and :meth:`Completions.track`. This
module knows nothing about routes, API keys or adapter administration.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from fastapi import Request

from gateway.api.auth import OPEN, Principal, principal_of
from gateway.api.event_stream import DONE, EventStream
from gateway.api.knowledge_protocol import Citation
from gateway.api.merged import Merged
from gateway.api.metrics import Metrics
from gateway.api.objects import ChatCompletion, Completion, Usage
from gateway.api.protocol import ChatCompletionRequest, CompletionRequest
from gateway.api.rate_limits import RateLimits
from gateway.api.responses import ChatObjects, Choices, TextObjects, sse
from gateway.errors import LoragError, as_lorag_error, invalid, model_not_found
from gateway.knowledge.retrieval import Retrieval
from gateway.knowledge.service import Knowledge
from gateway.knowledge.vector_stores import may_use
from gateway.model_names import ModelRef, parse
from serve.engine import Delta, Engine, Message, SamplingParams

T = TypeVar("T")


class Completions:
    """Chat and legacy completions on one engine."""

    def __init__(self, engine: Engine, metrics: Metrics, knowledge: Knowledge, limits: RateLimits):
        self.engine = engine
        self.metrics = metrics
        self.knowledge = knowledge
        self.limits = limits

    async def respond(
        self, body: ChatCompletionRequest | CompletionRequest, request: Request
    ) -> ChatCompletion | Completion | EventStream:
        principal = principal_of(request)
        ref = self.resolve(body.model, principal)
        conversations, params = body.engine_inputs()
        citations = None
        retrieval = self.retrieval(ref, body)
        if retrieval is not None and not may_use(self.knowledge, retrieval.kb, principal):
            raise model_not_found(f"no knowledge base named '{retrieval.kb}'")
        if retrieval is not None:
            augmented, cited = await self.knowledge.augment(retrieval, conversations[0])
            conversations, citations = [augmented], [Citation.model_validate(c) for c in cited]
        work = [(conversation, _seeded(params, j)) for conversation in conversations for j in range(body.n)]
        asked = params.logprobs is not None
        if isinstance(body, ChatCompletionRequest):
            out = ChatObjects(ref.name, citations, body.tool_use, asked)
        else:
            out = TextObjects(ref.name, asked)
        track = self.track(ref, principal, out.endpoint)
        choices = Choices(len(work), body.n)
        try:
            if not body.stream:
                await cancel_on_disconnect(request, self._whole(ref, work, choices, track))
                track.done("ok", choices.usage())
                return out.whole(choices)
            deltas = self.deltas(ref, work)
            first = await cancel_on_disconnect(request, _first(deltas))
        except BaseException as error:
            track.done("cancelled" if isinstance(error, ClientDisconnected | asyncio.CancelledError) else "error", None)
            raise
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return EventStream(_events(out, first, deltas, choices, include_usage, track))

    async def _whole(
        self, ref: ModelRef, work: list[tuple[list[Message], SamplingParams]], choices: Choices, track: Track
    ) -> None:
        """Every choice generated whole, at once (the engine's ``generate``: from vLLM one reply, not an event per
        token); when one fails, the others are cancelled."""
        for index, g in enumerate(await _all([self.engine.generate(m, p, ref.adapter) for m, p in work])):
            delta = Delta(g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens, g.logprobs)
            choices.add(index, delta)
            track.text(delta)

    def track(self, ref: ModelRef, principal: Principal, endpoint: str) -> Track:
        """The metrics of one request to ``endpoint`` on ``ref``, its tokens spent from the key's rate limit."""
        label = metric_label(ref, self.engine.info.base_model)
        return Track(self.metrics, endpoint, label, lambda tokens: self.limits.spend(principal, tokens))

    def deltas(self, ref: ModelRef, work: list[tuple[list[Message], SamplingParams]]) -> Merged:
        """``(choice, delta)`` of one engine stream per ``(conversation, params)`` of ``work``, merged as they come
        (the seam other APIs, such as Responses, build their own objects on); close it when done."""
        return Merged(self.engine, ref.adapter, work)

    def resolve(self, name: str, principal: Principal = OPEN) -> ModelRef:
        """What ``name`` asks for; 404 for an unknown model or knowledge base, or one outside the key's scope."""
        base = self.engine.info.base_model
        ref = parse(name, base, [a for a in self.engine.adapters() if principal.may_use_model(a)])
        if not principal.may_use_model(ref.adapter or base):
            raise model_not_found(f"The model '{name}' does not exist")
        if ref.kb is not None and not may_use(self.knowledge, ref.kb, principal):
            raise model_not_found(
                f"The model '{name}' asks for knowledge base '{ref.kb}', which does not exist: "
                "GET /v1/knowledge_bases lists them"
            )
        return ref

    @staticmethod
    def retrieval(ref: ModelRef, body: ChatCompletionRequest | CompletionRequest) -> Retrieval | None:
        """How this request retrieves: from ``<m>@<kb>`` and the ``rag`` extension; None for no retrieval."""
        options = getattr(body, "rag", None)
        if ref.kb is None and options is None:
            return None
        if not isinstance(body, ChatCompletionRequest):
            raise invalid("model", "knowledge bases are served on /v1/chat/completions, not legacy completions")
        if options is None:
            return Retrieval(kb=ref.kb)
        if ref.kb and options.kb and ref.kb != options.kb:
            raise invalid("rag.kb", f"the model names knowledge base '{ref.kb}' but rag.kb is '{options.kb}'")
        kb = ref.kb or options.kb
        if kb is None:
            raise invalid("rag.kb", "name the knowledge base: rag.kb, or a model name '<model>@<kb>'")
        return Retrieval(kb=kb, **options.model_dump(exclude={"kb"}))


def metric_label(ref: ModelRef, base: str) -> str:
    """The ``model`` label of a request's metrics: the base model or adapter, and ``@kb`` for any knowledge base,
    so labels stay as few as the served models and ``/metrics`` (public) names no knowledge base."""
    model = ref.adapter or base
    return f"{model}@kb" if ref.kb else model


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` in this task, cancelling it if the client disconnects first (499, a response nobody reads)."""
    this, left = asyncio.current_task(), []

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left.append(True)
        this.cancel()

    watcher = asyncio.create_task(watch())
    try:
        result = await work
    except asyncio.CancelledError:
        if left and this.uncancel() == 0:  # cancelled because the client left, not by the server
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()
    if left:  # the client left as the work ended, and the work let the cancellation pass: it is done
        this.uncancel()
    return result


class ClientDisconnected(LoragError):
    def __init__(self) -> None:
        super().__init__(499, "the client closed the request", code="client_closed_request")


def _seeded(params: SamplingParams, choice: int) -> SamplingParams:
    """The ``choice``-th of ``n`` samples: its own seed, so that seeded choices differ."""
    return params if params.seed is None or choice == 0 else replace(params, seed=params.seed + choice)


async def _all(work: list[Awaitable[T]]) -> list[T]:
    """The results of ``work``, run at once; when one fails, the rest are cancelled (and awaited) before it raises."""
    if len(work) == 1:
        return [await work[0]]
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _first(deltas: Merged) -> tuple[int, Delta]:
    """The first delta of a stream; the stream closed (its engine streams ended) if it fails or is cancelled."""
    try:
        return await anext(deltas)
    except BaseException:
        await deltas.aclose()
        raise


class Track:
    """Metrics of one request: latency, time to first text, tokens, outcome."""

    def __init__(self, metrics: Metrics, endpoint: str, model: str, spend: Callable[[int], None]):
        self.metrics, self.endpoint, self.model, self.spend = metrics, endpoint, model, spend
        self.start = time.perf_counter()
        self.first_text = False

    def text(self, delta: Delta) -> None:
        if delta.text and not self.first_text:
            self.first_text = True
            self.metrics.first_token.labels(self.endpoint, self.model).observe(time.perf_counter() - self.start)

    def done(self, outcome: str, usage: Usage | None) -> None:
        self.metrics.requests.labels(self.endpoint, self.model, outcome).inc()
        self.metrics.latency.labels(self.endpoint, self.model).observe(time.perf_counter() - self.start)
        if usage is not None:
            self.metrics.prompt_tokens.labels(self.model).inc(usage.prompt_tokens)
            self.metrics.completion_tokens.labels(self.model).inc(usage.completion_tokens)
            self.spend(usage.total_tokens)


async def _events(
    out: ChatObjects | TextObjects, first, deltas: Merged, choices: Choices, include_usage: bool, track: Track
) -> AsyncIterator[str]:
    """The server-sent events of one streamed response, ending with ``data: [DONE]``; the events of deltas that
    arrived together leave in one write."""
    outcome, ready = "cancelled", [sse(chunk) for chunk in out.opening(len(choices.texts))]
    try:
        arrived = [first, *await deltas.batch(wait=False)]
        while arrived:
            for index, delta in arrived:
                choices.add(index, delta)
                track.text(delta)
                ready += [sse(chunk) for chunk in out.chunks(index, delta)]
            if ready and deltas.running:  # the last choice's finish leaves with the end
                yield "".join(ready)
                ready = []
            arrived = await deltas.batch()
        if include_usage:
            ready.append(sse(out.usage_chunk(choices.usage())))
        outcome = "ok"
    except Exception as error:  # the engine failed mid-stream: tell the client in OpenAI's way
        outcome = "error"
        ready.append(sse(json.dumps(as_lorag_error(error).body())))
    finally:
        await deltas.aclose()
        track.done(outcome, choices.usage() if outcome == "ok" else None)
    yield "".join(ready) + DONE  # one write, which also ends the body
