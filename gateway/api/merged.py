"""One engine stream per choice of a request, merged: ``(choice, delta)`` in arrival order until every choice ends.

Each choice's stream is pumped by a task of its own into one arrival queue; a reader takes what has
arrived one by one (iterating) or all at once (:meth:`Merged.batch`, so that a stream can send what
arrived together in one write). This module knows nothing about HTTP or OpenAI's objects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import aclosing

from serve.engine import Delta, Engine, Message, SamplingParams


class Merged:
    """``(choice, delta)`` from one engine stream per choice, in arrival order, until every choice finishes.

    :meth:`batch` gives all that has arrived at once, so that a stream can send what arrived together in one write;
    iterating gives the items one by one. An engine's error is raised in its turn. Close it (``aclose``) when done:
    that ends the engine streams of choices still running."""

    def __init__(self, engine: Engine, adapter: str | None, work: list[tuple[list[Message], SamplingParams]]):
        self.engine, self.adapter = engine, adapter
        self.arrived: deque[tuple[int, Delta | Exception]] = deque()
        self.arrival = asyncio.Event()
        self.tasks = [asyncio.create_task(self._pump(i, messages, params)) for i, (messages, params) in enumerate(work)]
        self.running = len(self.tasks)

    def _put(self, item: tuple[int, Delta | Exception]) -> None:
        self.arrived.append(item)
        self.arrival.set()

    async def _pump(self, index: int, messages: list[Message], params: SamplingParams) -> None:
        try:
            async with aclosing(self.engine.stream(messages, params, self.adapter)) as deltas:
                async for delta in deltas:
                    self._put((index, delta))
                    if delta.finish_reason:
                        return
            self._put((index, Delta("", "stop")))  # an engine that ended without saying why
        except Exception as error:
            self._put((index, error))

    async def batch(self, wait: bool = True) -> list[tuple[int, Delta]]:
        """The items that have arrived, in order, up to an error (raised when it comes first); with ``wait``, at
        least one while any choice is running. Empty once every choice has finished."""
        if wait:
            await self._arrival()
        out = []
        while self.arrived and self.running and not (out and isinstance(self.arrived[0][1], Exception)):
            out.append(self._take())
        return out

    def __aiter__(self) -> Merged:
        return self

    async def __anext__(self) -> tuple[int, Delta]:
        await self._arrival()
        if not self.running:
            raise StopAsyncIteration
        return self._take()

    async def _arrival(self) -> None:
        """Until an item has arrived or every choice has finished."""
        while self.running and not self.arrived:
            self.arrival.clear()
            await self.arrival.wait()

    def _take(self) -> tuple[int, Delta]:
        """The first item that arrived; an engine's error is raised."""
        index, item = self.arrived.popleft()
        if isinstance(item, Exception):
            raise item
        self.running -= bool(item.finish_reason)
        return index, item

    async def aclose(self) -> None:
        # Finished pumps are still closing their engine streams (for vLLM, an HTTP response):
        # cancelling them mid-close would strand the upstream connection. Cancel only when
        # choices were abandoned (the client left, or another choice failed).
        if self.running:
            for task in self.tasks:
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
