"""Tools on models that produce text: tools and tool messages rendered into the prompt, and calls read back.

lorag renders tools in the Hermes format, the one Qwen 2.5's and Hermes' chat templates use: the
function signatures in the system message inside ``<tools></tools>``, each call the assistant
made as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``, each result as a user turn
inside ``<tool_response></tool_response>``. With ``tool_choice`` ``required`` or a named function
the reply is constrained by a JSON schema (one call of any tool, or the named function's
arguments), so the arguments always parse; with ``auto`` the model decides, and a reply whose
``<tool_call>`` blocks parse becomes tool calls. :class:`ToolStream` turns one choice's text into
OpenAI's deltas, content or ``tool_calls``; a whole response is its deltas merged, so streamed and
non-streamed answers agree. This module knows nothing about HTTP or engines' internals.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from gateway.api.objects import ChunkDelta, FunctionCallDelta, ToolCallDelta, new_id
from gateway.api.tool_protocol import FunctionCall, NamedToolChoice, Tool, ToolCall, ToolChoice
from serve.engine import Message

OPEN, CLOSE = "<tool_call>", "</tool_call>"
TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""
_BLOCK = re.compile(re.escape(OPEN) + r"\s*(.*?)\s*(?:" + re.escape(CLOSE) + r"|$)", re.DOTALL)


def render_call(call: ToolCall) -> str:
    """An assistant's earlier tool call as the model would have written it."""
    try:
        arguments = json.loads(call.function.arguments)
    except ValueError:
        arguments = call.function.arguments
    return f"{OPEN}\n{json.dumps({'name': call.function.name, 'arguments': arguments})}\n{CLOSE}"


def render_result(content: str) -> str:
    """A tool's result, as the user turn that carries it back to the model."""
    return f"<tool_response>\n{content}\n</tool_response>"


def add_system(messages: list[Message], text: str) -> list[Message]:
    """``messages`` with ``text`` closing the system message (one is put first if there is none)."""
    if messages and messages[0].role == "system":
        return [Message("system", f"{messages[0].content}\n\n{text}"), *messages[1:]]
    return [Message("system", text), *messages]


@dataclass(frozen=True)
class ToolUse:
    """The tools a request offers and how the model may use them: ``auto``, ``required`` or one named function."""

    tools: tuple[Tool, ...]
    choice: str  # auto | required | the name of the function to call

    @classmethod
    def of(cls, tools: list[Tool] | None, choice: ToolChoice | None) -> ToolUse | None:
        """The tool use of a request; None when it offers no tools or says ``none``. ValueError for a bad choice."""
        if isinstance(choice, NamedToolChoice):
            if not any(t.function.name == choice.function.name for t in tools or ()):
                raise ValueError(f"tool_choice names '{choice.function.name}', which is not among the tools")
            return cls(tuple(tools), choice.function.name)
        if choice == "required" and not tools:
            raise ValueError("tool_choice 'required' needs tools")
        if not tools or choice == "none":
            return None
        return cls(tuple(tools), choice or "auto")

    def prompt(self, messages: list[Message]) -> list[Message]:
        """``messages`` with the tools described in the system message (merged into the first one, if any)."""
        signatures = "\n".join(json.dumps(t.model_dump(exclude_none=True)) for t in self.tools)
        text = TOOLS_PROMPT.format(tools=signatures)
        if self.choice == "required":
            text += '\n\nCall one of the functions now: reply with one JSON object {"name": ..., "arguments": ...}.'
        elif self.choice != "auto":
            text += f"\n\nCall the function {self.choice} now: reply with its arguments as a JSON object."
        return add_system(messages, text)

    def schema(self) -> str | None:
        """The JSON schema that constrains the reply (JSON text); None with ``auto``, where the model is free."""
        if self.choice == "auto":
            return None
        if self.choice != "required":
            return json.dumps(self._function(self.choice).parameters)
        calls = [
            {
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "arguments": t.function.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in self.tools
        ]
        return json.dumps(calls[0] if len(calls) == 1 else {"anyOf": calls})

    def _function(self, name: str):
        return next(t.function for t in self.tools if t.function.name == name)

    def calls(self, text: str) -> list[tuple[str, str]] | None:
        """The ``(name, arguments JSON)`` calls in a whole reply, or None when it holds none that parse."""
        if self.choice not in ("auto", "required"):
            return [(self.choice, text)]
        found = [m.group(1) for m in _BLOCK.finditer(text)] if self.choice == "auto" else [text]
        calls = []
        for block in found:
            try:
                call = json.loads(block)
                name, arguments = call["name"], call.get("arguments", {})
                self._function(name)
                arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
            except (ValueError, KeyError, TypeError, StopIteration):
                return None
            if not isinstance(arguments, dict):
                return None
            calls.append((name, json.dumps(arguments)))
        return calls or None


@dataclass
class ToolStream:
    """One choice's text in, OpenAI's chunk deltas out: content, or ``tool_calls`` when the model called tools.

    A named function's arguments stream as they come. A ``required`` call is read whole at the
    end. With ``auto``, content streams until a ``<tool_call>`` may be starting; from there the
    text is held until the end, then sent as tool calls if it holds some that parse, else as content.
    """

    use: ToolUse | None
    held: str = ""
    started: bool = False  # a named call's first piece (id, name) is out
    ids: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[ChunkDelta]:
        if self.use is None:
            return [ChunkDelta(content=text)] if text else []
        if self.use.choice not in ("auto", "required"):
            out = [] if self.started else [self._call(0, self.use.choice, "")]
            self.started = True
            return out + ([ChunkDelta(tool_calls=[_arguments(0, text)])] if text else [])
        self.held += text
        if self.use.choice == "required" or OPEN in self.held:
            return []
        keep = max((k for k in range(1, len(OPEN)) if self.held.endswith(OPEN[:k])), default=0)
        out, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        return [ChunkDelta(content=out)] if out else []

    def finish(self, reason: str) -> tuple[list[ChunkDelta], str]:
        """The last deltas of the choice, and its finish reason (``tool_calls`` when it called tools)."""
        if self.use is None:
            return [], reason
        if self.use.choice not in ("auto", "required"):
            out = [] if self.started else [self._call(0, self.use.choice, "")]
            self.started = True
            return out, "tool_calls" if reason == "stop" else reason
        calls = self.use.calls(self.held) if reason == "stop" else None
        if calls is None:
            return ([ChunkDelta(content=self.held)] if self.held else []), reason
        return [self._call(i, name, arguments) for i, (name, arguments) in enumerate(calls)], "tool_calls"

    def _call(self, index: int, name: str, arguments: str) -> ChunkDelta:
        self.ids.append(new_id("call"))
        call = ToolCallDelta(
            index=index, id=self.ids[-1], type="function", function=FunctionCallDelta(name=name, arguments=arguments)
        )
        return ChunkDelta(tool_calls=[call])


def _arguments(index: int, text: str) -> ToolCallDelta:
    return ToolCallDelta(index=index, function=FunctionCallDelta(arguments=text))


def merged(deltas: list[ChunkDelta]) -> tuple[str | None, list[ToolCall] | None]:
    """The message content and tool calls of a choice whose deltas were ``deltas``."""
    content = "".join(d.content or "" for d in deltas)
    calls: dict[int, ToolCall] = {}
    for piece in (c for d in deltas for c in d.tool_calls or ()):
        if piece.index not in calls:
            calls[piece.index] = ToolCall(id=piece.id, function=FunctionCall(name=piece.function.name, arguments=""))
        calls[piece.index].function.arguments += piece.function.arguments
    if calls:
        return content or None, [calls[i] for i in sorted(calls)]
    return content, None
