"""An OpenAI server-sent event stream as an ASGI response, in as few socket writes as it can.

Each piece of text its iterator yields leaves at once, in one write; the piece that ends with
``data: [DONE]`` (how OpenAI ends a stream) also ends the body, which otherwise costs a write of
its own. A client that goes away cancels the iterator where it waits (its ``finally`` runs; for a
completion, that ends the engine streams). Starlette's ``StreamingResponse``, which this extends,
watches for the client with a task group per request; this takes one watcher task. This module
knows nothing about completions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE = "data: [DONE]\n\n"


class EventStream(StreamingResponse):
    """``text/event-stream`` of the pieces of ``events``, uncached; see the module docstring."""

    def __init__(self, events: AsyncGenerator[str, None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming, state = asyncio.current_task(), {"left": False, "ended": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["ended"]:  # after the body's end, a disconnect is only the response being complete
                state["left"] = True
                streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await self._stream(send, state)
        except asyncio.CancelledError:
            if not state["left"]:
                raise
            streaming.uncancel()  # cancelled here because the client left: the response ends quietly
        finally:
            watcher.cancel()

    async def _stream(self, send: Send, state: dict) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with aclosing(self.body_iterator) as events:
            async for piece in events:
                last = piece.endswith(DONE)
                state["ended"] = last
                await send({"type": "http.response.body", "body": piece.encode(), "more_body": not last})
        if not state["ended"]:
            state["ended"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
