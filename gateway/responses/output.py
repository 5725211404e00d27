"""One response's output, built from the chat pipeline's text as it comes: output items and OpenAI's stream events.

:class:`Output` reads one choice's text through chat's :class:`~gateway.api.tool_calls.ToolStream`
(so tool calls are read exactly as chat reads them) and turns its deltas into output items: text
into a ``message`` with one ``output_text`` part, each tool call into a ``function_call`` item. Every
step also returns the events that a streamed response sends, each with its ``sequence_number``, in
OpenAI's order: ``response.created``, ``response.in_progress``, then per item
``response.output_item.added``, (``response.content_part.added``, ``response.output_text.delta``...,
``response.output_text.annotation.added``..., ``response.output_text.done``,
``response.content_part.done``) or (``response.function_call_arguments.delta``...,
``response.function_call_arguments.done``), ``response.output_item.done``, and at last
``response.completed`` or ``response.incomplete``. A whole response is the same steps with the
events dropped, so streamed and whole outputs are the same. This module knows nothing about
engines, storage or HTTP.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.api.objects import ChunkDelta
from gateway.api.tool_calls import ToolStream, ToolUse
from gateway.responses.objects import (
    FileCitation,
    FileSearchCall,
    FunctionCall,
    IncompleteDetails,
    OutputMessage,
    OutputText,
    Response,
    ResponseUsage,
    new_id,
)
from rag.augment import Citation


class Output:
    """The output of one response in the making; ``response`` is its object, complete once :meth:`close` ran."""

    def __init__(
        self, response: Response, tools: ToolUse | None, citations: list[tuple[Citation, str]], results: bool = False
    ):
        """``response``: the object so far (a file search's item already in ``output``); ``citations``: each
        retrieved source with its file id, cited by the message's text; ``results``: whether events show a file
        search's results. With ``parallel_tool_calls`` false, only the first function call the model made is
        output."""
        self.response, self.results = response, results
        self.skipping = False  # a call beyond the first one, when parallel calls are not wanted
        self.stream = ToolStream(tools)
        self.citations = citations
        self.seq = 0
        self.message: OutputMessage | None = None  # the open message, while text comes
        self.call: FunctionCall | None = None  # the open function call, while its arguments come

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def opening(self) -> list[dict]:
        """``response.created``, ``response.in_progress``, and the events of a file search already made."""
        snapshot = self.response.model_copy(update={"status": "in_progress", "output": [], "usage": None})
        events = [self.event("response.created", response=snapshot), self.event("response.in_progress",
                                                                                response=snapshot)]  # fmt: skip
        for index, item in enumerate(self.response.output):
            if isinstance(item, FileSearchCall):
                started = item.model_copy(update={"status": "in_progress", "results": None})
                events.append(self.event("response.output_item.added", output_index=index, item=started))
                for step in ("in_progress", "searching", "completed"):
                    events.append(self.event(f"response.file_search_call.{step}", output_index=index, item_id=item.id))
                done = item if self.results else item.model_copy(update={"results": None})
                events.append(self.event("response.output_item.done", output_index=index, item=done))
        return events

    def feed(self, text: str) -> list[dict]:
        """The events of the next piece of the model's text."""
        return self._pieces(self.stream.feed(text))

    def close(self, reason: str, usage: ResponseUsage) -> list[dict]:
        """The last events: the open items done, then ``response.completed`` (``response.incomplete`` when the
        length limit cut the answer). ``reason``: the engine's finish reason."""
        last, finish = self.stream.finish(reason)
        events = self._pieces(last)
        status = "incomplete" if finish == "length" else "completed"
        if not any(isinstance(item, OutputMessage | FunctionCall) for item in self.response.output):
            events += self._open_message()  # an empty answer is still a message
        events += self._close_open(status)
        self.response.status, self.response.usage = status, usage
        if status == "incomplete":
            self.response.incomplete_details = IncompleteDetails(reason="max_output_tokens")
        else:
            self.response.completed_at = int(time.time())
        shown = self.response if self.results else self.response.without_results()
        return events + [self.event(f"response.{status}", response=shown)]

    def _pieces(self, pieces: list[ChunkDelta]) -> list[dict]:
        events: list[dict] = []
        for piece in pieces:
            if piece.content:
                if self.message is None:
                    events += self._close_open("completed") + self._open_message()
                self.message.content[0].text += piece.content
                events.append(self._text_event("response.output_text.delta", delta=piece.content, logprobs=[]))
            for call in piece.tool_calls or ():
                if call.id is not None:  # a new call
                    self.skipping = not self.response.parallel_tool_calls and any(
                        isinstance(item, FunctionCall) for item in self.response.output
                    )
                if self.skipping:
                    continue
                if call.id is not None:
                    events += self._close_open("completed")
                    self.call = FunctionCall(id=new_id("fc"), status="in_progress", arguments="", call_id=call.id,
                                             name=call.function.name or "")  # fmt: skip
                    self.response.output.append(self.call)
                    added = self.call.model_copy()
                    events.append(self.event("response.output_item.added", output_index=self._index(), item=added))
                if call.function.arguments and self.call is not None:
                    self.call.arguments += call.function.arguments
                    events.append(self.event("response.function_call_arguments.delta", output_index=self._index(),
                                             item_id=self.call.id, delta=call.function.arguments))  # fmt: skip
        return events

    def _open_message(self) -> list[dict]:
        self.message = OutputMessage(id=new_id("msg"), status="in_progress", content=[])
        self.response.output.append(self.message)
        added = self.event("response.output_item.added", output_index=self._index(), item=self.message.model_copy())
        self.message.content.append(OutputText(text=""))
        return [added, self._text_event("response.content_part.added", part=OutputText(text=""))]

    def _close_open(self, status: str) -> list[dict]:
        events: list[dict] = []
        if self.message is not None:
            message, part = self.message, self.message.content[0]
            part.annotations = self._annotations(part.text)
            for number, annotation in enumerate(part.annotations):
                events.append(self._text_event("response.output_text.annotation.added", annotation_index=number,
                                               annotation=annotation))  # fmt: skip
            events.append(self._text_event("response.output_text.done", text=part.text, logprobs=[]))
            events.append(self._text_event("response.content_part.done", part=part))
            message.status = status
            events.append(self.event("response.output_item.done", output_index=self._index(), item=message))
            self.message = None
            self.citations = []  # cited once, by the first message
        if self.call is not None:
            call, index = self.call, self._index()
            events.append(self.event("response.function_call_arguments.done", output_index=index, item_id=call.id,
                                     name=call.name, arguments=call.arguments))  # fmt: skip
            call.status = status
            events.append(self.event("response.output_item.done", output_index=index, item=call))
            self.call = None
        return events

    def _annotations(self, text: str) -> list[FileCitation]:
        """A ``file_citation`` per source: placed after its ``[n]`` in the text where the model cited it, else at
        the end."""
        out = []
        for citation, file_id in self.citations:
            marker = f"[{citation.index}]"
            at = text.find(marker)
            index = at + len(marker) if at >= 0 else len(text)
            out.append(FileCitation(file_id=file_id, filename=citation.filename, index=index))
        return out

    def _text_event(self, kind: str, **fields: Any) -> dict:
        return self.event(kind, output_index=self._index(), item_id=self.message.id, content_index=0, **fields)

    def _index(self) -> int:
        return len(self.response.output) - 1


def sse(event: dict) -> str:
    """One server-sent event: OpenAI names the event and sends its JSON as data."""
    data = json.dumps(event, default=lambda model: model.model_dump(mode="json"))
    return f"event: {event['type']}\ndata: {data}\n\n"
