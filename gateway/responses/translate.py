"""A Responses request as the chat pipeline's request: items to messages, flat tools to chat tools, turns to drop.

:func:`stored_items` gives every input item an id and OpenAI's stored shape (what
``input_items`` lists and a continued conversation replays); :func:`chat_request` turns the
instructions and a conversation of such items into a :class:`~gateway.api.protocol.ChatCompletionRequest`:
messages keep their role, consecutive ``function_call`` items become one assistant turn's
``tool_calls``, a ``function_call_output`` a ``tool`` turn, a ``file_search_call`` nothing (the
model reads its sources in the system turn of the search's own response). ``text.format``
becomes ``response_format``; function tools and ``tool_choice`` become chat's. :func:`turns`
splits a conversation where each user message starts, so ``truncation: auto`` can drop the
oldest. This module knows nothing about engines, storage or HTTP.
"""

from __future__ import annotations

from pydantic import ValidationError

from gateway.api.protocol import ChatCompletionRequest
from gateway.errors import invalid
from gateway.responses.objects import (
    FileSearchCall,
    FunctionCall,
    FunctionCallOutput,
    InputMessage,
    InputText,
    OutputMessage,
    OutputText,
    StoredItem,
    new_id,
)
from gateway.responses.protocol import (
    FileSearchCallItem,
    FileSearchChoice,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionChoice,
    FunctionTool,
    MessageItem,
    ResponseCreate,
)

_PARAMS = {"messages": "input", "tools": "tools", "tool_choice": "tool_choice", "response_format": "text.format"}


def stored_items(
    items: list[MessageItem | FunctionCallItem | FunctionCallOutputItem | FileSearchCallItem],
) -> list[StoredItem]:
    """The request's input items in OpenAI's stored shapes, each with an id (its own, or a new one)."""
    out: list[StoredItem] = []
    for item in items:
        if isinstance(item, MessageItem) and item.role == "assistant":
            out.append(OutputMessage(id=item.id or new_id("msg"), status="completed",
                                     content=[OutputText(text=item.text())]))  # fmt: skip
        elif isinstance(item, MessageItem):
            parts = [item.content] if isinstance(item.content, str) else [p.text for p in item.content]
            out.append(InputMessage(id=item.id or new_id("msg"), role=item.role,
                                    content=[InputText(text=text) for text in parts]))  # fmt: skip
        elif isinstance(item, FunctionCallItem):
            out.append(FunctionCall(id=item.id or new_id("fc"), status="completed", arguments=item.arguments,
                                    call_id=item.call_id, name=item.name))  # fmt: skip
        elif isinstance(item, FunctionCallOutputItem):
            out.append(FunctionCallOutput(id=item.id or new_id("fco"), call_id=item.call_id, output=item.text()))
        else:
            out.append(FileSearchCall(id=item.id, status="completed", queries=item.queries))
    return out


def messages_of(instructions: str | None, items: list[StoredItem]) -> list[dict]:
    """Chat messages (OpenAI's chat shape) for the instructions and a conversation of items."""
    messages: list[dict] = [{"role": "system", "content": instructions}] if instructions else []
    for item in items:
        if isinstance(item, InputMessage):
            messages.append({"role": item.role, "content": "".join(p.text for p in item.content)})
        elif isinstance(item, OutputMessage):
            messages.append({"role": "assistant", "content": "".join(p.text for p in item.content)})
        elif isinstance(item, FunctionCall):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}  # fmt: skip
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutput):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
    return messages


def last_query(items: list[StoredItem]) -> str | None:
    """The text of the last user message: what a file search retrieves for."""
    for item in reversed(items):
        if isinstance(item, InputMessage) and item.role == "user":
            return "".join(p.text for p in item.content)
    return None


def turns(items: list[StoredItem]) -> tuple[list[StoredItem], list[list[StoredItem]]]:
    """The items before the first user message, and the turns: each from a user message to the next one."""
    preamble: list[StoredItem] = []
    out: list[list[StoredItem]] = []
    for item in items:
        if isinstance(item, InputMessage) and item.role == "user":
            out.append([item])
        elif out:
            out[-1].append(item)
        else:
            preamble.append(item)
    return preamble, out


def chat_request(body: ResponseCreate, items: list[StoredItem]) -> ChatCompletionRequest:
    """The chat request the engine runs for ``body`` over the conversation ``items``; 400 naming the field."""
    functions = [t for t in body.tools if isinstance(t, FunctionTool)]
    tools = [
        {"type": "function", "function": {
            "name": t.name, "description": t.description, "strict": t.strict,
            **({"parameters": t.parameters} if t.parameters is not None else {}),
        }}
        for t in functions
    ]  # fmt: skip
    choice = body.tool_choice
    if isinstance(choice, FunctionChoice):
        tool_choice = {"type": "function", "function": {"name": choice.name}}
    elif isinstance(choice, FileSearchChoice) or not functions:
        tool_choice = "none" if functions else None
    else:
        tool_choice = choice
    text = body.text.format
    values = {
        "model": body.model, "messages": messages_of(body.instructions, items),
        "max_completion_tokens": body.max_output_tokens, "metadata": body.metadata,
        "parallel_tool_calls": body.parallel_tool_calls, "seed": body.seed, "temperature": body.temperature,
        "top_p": body.top_p, "user": body.user, "tool_choice": tool_choice, "tools": tools or None,
        "response_format": text.response_format() if text.type != "text" else None,
    }  # fmt: skip
    try:
        return ChatCompletionRequest.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = first["loc"][0] if first["loc"] else None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise invalid(_PARAMS.get(where, where), f"Invalid '{_PARAMS.get(where, where)}': {message}") from None
