"""Serving ``/v1/responses``: a Responses request run on the chat pipeline, streamed or whole, and stored.

:meth:`Responses.create` resolves the model as chat does (adapters, ``ft:`` models, ``<model>@<kb>``
and the key's scopes, :meth:`~gateway.api.completions.Completions.resolve`), prepends the stored
conversation of ``previous_response_id``, translates the request into a chat request
(:mod:`gateway.responses.translate`), retrieves for a ``file_search`` tool or a ``@kb`` model, and
runs the engine through :meth:`~gateway.api.completions.Completions.deltas` with chat's metrics and
token spending. Everything that can be refused is refused before the engine starts; the first
engine delta is awaited before a stream begins, so a prompt over the model's context is a 400
``context_length_exceeded`` (``truncation: "disabled"``) or makes the oldest turns go, one at a
time, until it fits (``"auto"``). A ``store``d response is saved with its input items and the
conversation it continued, owned by the calling key. This module knows nothing about routes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.api.auth import Principal, principal_of
from gateway.api.completions import ClientDisconnected, Completions, Track, cancel_on_disconnect
from gateway.api.responses import Choices
from gateway.api.tool_calls import ToolUse
from gateway.errors import LoragError, as_lorag_error, invalid
from gateway.knowledge.service import Knowledge
from gateway.knowledge.vector_stores import VectorStores
from gateway.model_names import ModelRef
from gateway.responses import file_search
from gateway.responses.objects import Response, ResponseUsage, StoredItem, new_id
from gateway.responses.output import Output, sse
from gateway.responses.protocol import INCLUDABLE, ResponseCreate
from gateway.responses.store import ResponseStore, Stored
from gateway.responses.translate import chat_request, last_query, stored_items, turns
from rag.augment import citations_of
from rag.retriever import Hit
from serve.engine import ContextLengthExceeded, Delta

ENDPOINT = "responses"


def not_found(response_id: str) -> LoragError:
    return LoragError(404, f"Response with id '{response_id}' not found.", param="response_id", code="not_found")


def shown(response: Response, include: list[str] | None) -> Response:
    """``response`` as a client sees it: file search results only when ``include`` asks for them."""
    return response if INCLUDABLE in (include or ()) else response.without_results()


class Responses:
    """The Responses API over one gateway's chat pipeline, knowledge bases and response store."""

    def __init__(self, store: ResponseStore, knowledge: Knowledge):
        self.store, self.knowledge = store, knowledge

    def stored(self, response_id: str, principal: Principal) -> Stored:
        """The stored response ``principal`` may see; 404 otherwise."""
        found = self.store.get(response_id, principal)
        if found is None:
            raise not_found(response_id)
        return found

    async def create(
        self, body: ResponseCreate, request: Request, completions: Completions, stores: VectorStores
    ) -> JSONResponse | StreamingResponse:
        principal = principal_of(request)
        body.check_tools()
        ref = completions.resolve(body.model, principal)
        context: list[StoredItem] = []
        if body.previous_response_id is not None:
            previous = self.store.get(body.previous_response_id, principal)
            if previous is None:
                raise LoragError(404, f"Previous response with id '{body.previous_response_id}' not found.",
                                 param="previous_response_id", code="previous_response_not_found")  # fmt: skip
            context = previous.conversation()
        items = stored_items(body.items())
        chat = chat_request(body, context + items)  # every field checked before any work
        kb_retrieval, tool = completions.retrieval(ref, chat), body.file_search
        if kb_retrieval is not None and tool is not None:
            raise invalid("tools", "a file_search tool cannot be combined with a model name '<model>@<kb>'")
        if tool is not None:
            file_search.check_stores(stores, principal, tool)
        query = last_query(context + items)
        if (tool or kb_retrieval) and query is None:
            raise invalid("input", "file search needs a user message to search for")
        response = self._response(body, ref.name)
        hits: list[Hit] = []
        if tool is not None:
            hits = await file_search.search(stores, tool, query)
            response.output.append(file_search.file_search_call(query, hits))
        elif kb_retrieval is not None:
            hits = await self.knowledge.search(kb_retrieval, query)
        cited = [(citation, file_search.file_id(citation)) for citation in citations_of(hits)]
        track = completions.track(ref, principal, ENDPOINT)
        kept, first, deltas, tools = await self._start(body, context + items, hits, ref, completions, request, track)
        output = Output(response, tools, cited, INCLUDABLE in (body.include or ()))
        new = {id(item) for item in items}
        save = self._saver(body, principal, [item for item in kept if id(item) not in new], items)
        if not body.stream:
            choices = Choices(1, 1)
            try:
                await cancel_on_disconnect(request, _collect(output, choices, first, deltas, track))
            except BaseException as error:
                track.done(_outcome(error), None)
                raise
            track.done("ok", choices.usage())
            save(output.response)
            return JSONResponse(shown(output.response, body.include).model_dump(mode="json"))
        events = _events(output, first, deltas, track, save)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def _start(
        self, body: ResponseCreate, items: list[StoredItem], hits: list[Hit], ref: ModelRef,
        completions: Completions, request: Request, track: Track,
    ) -> tuple[list[StoredItem], tuple[int, Delta], AsyncIterator[tuple[int, Delta]], ToolUse | None]:  # fmt: skip
        """The items the model reads, the first delta and the rest, and the tool use; the oldest turns dropped
        while the prompt is over the model's context and ``truncation`` is ``auto``."""
        kept = items
        while True:
            chat = chat_request(body, kept)
            conversations, params = chat.engine_inputs()
            conversation = file_search.with_sources(conversations[0], hits)
            deltas = completions.deltas(ref, [(conversation, params)])
            try:
                first = await cancel_on_disconnect(request, anext(deltas))
                return kept, first, deltas, chat.tool_use
            except ContextLengthExceeded as error:
                await deltas.aclose()
                preamble, conversation_turns = turns(kept)
                if body.truncation == "auto" and len(conversation_turns) > 1:
                    kept = preamble + [item for turn in conversation_turns[1:] for item in turn]
                    continue
                track.done("error", None)
                raise LoragError(400, str(error), param="input", code="context_length_exceeded") from None
            except BaseException as error:
                track.done(_outcome(error), None)
                raise

    def _saver(self, body: ResponseCreate, principal: Principal, context: list[StoredItem], items: list[StoredItem]):
        def save(response: Response) -> None:
            if body.store:
                self.store.save(response, principal.name, context, items)

        return save

    @staticmethod
    def _response(body: ResponseCreate, model: str) -> Response:
        tools = [tool.model_dump(mode="json", by_alias=True) for tool in body.tools]
        choice = body.tool_choice if isinstance(body.tool_choice, str) else body.tool_choice.model_dump()
        return Response(
            id=new_id("resp"), created_at=int(time.time()), status="in_progress",
            instructions=body.instructions, max_output_tokens=body.max_output_tokens,
            max_tool_calls=body.max_tool_calls, model=model, parallel_tool_calls=body.parallel_tool_calls,
            previous_response_id=body.previous_response_id, prompt_cache_key=body.prompt_cache_key,
            safety_identifier=body.safety_identifier, store=body.store, temperature=body.temperature,
            text=body.text.model_dump(mode="json", by_alias=True, exclude_none=True), tool_choice=choice, tools=tools,
            top_p=body.top_p, truncation=body.truncation, user=body.user, metadata=body.metadata or {},
        )  # fmt: skip


def _outcome(error: BaseException) -> str:
    return "cancelled" if isinstance(error, ClientDisconnected | asyncio.CancelledError) else "error"


def usage_of(choices: Choices) -> ResponseUsage:
    usage = choices.usage()
    return ResponseUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                         total_tokens=usage.total_tokens)  # fmt: skip


async def _collect(output: Output, choices: Choices, first, deltas, track: Track) -> None:
    try:
        item = first
        while item is not None:
            index, delta = item
            choices.add(index, delta)
            track.text(delta)
            output.feed(delta.text)
            if delta.finish_reason:
                output.close(delta.finish_reason, usage_of(choices))
            item = await anext(deltas, None)
    finally:
        await deltas.aclose()


async def _events(output: Output, first, deltas, track: Track, save) -> AsyncIterator[str]:
    """The server-sent events of one streamed response; it is stored once complete."""
    outcome, choices = "cancelled", Choices(1, 1)
    try:
        for event in output.opening():
            yield sse(event)
        item = first
        while item is not None:
            index, delta = item
            choices.add(index, delta)
            track.text(delta)
            events = output.feed(delta.text)
            if delta.finish_reason:
                events += output.close(delta.finish_reason, usage_of(choices))
            for event in events:
                yield sse(event)
            item = await anext(deltas, None)
        outcome = "ok"
    except Exception as error:  # the engine failed mid-stream: say so as OpenAI's error event
        outcome = "error"
        detail = as_lorag_error(error)
        yield sse(output.event("error", code=detail.code, message=detail.message, param=detail.param))
    finally:
        await deltas.aclose()
        track.done(outcome, choices.usage() if outcome == "ok" else None)
    if outcome == "ok":
        save(output.response)
