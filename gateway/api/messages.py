"""The messages of a chat request, as OpenAI sends them, and the plain-text turns engines get from them.

Content is a string or a list of text parts. An assistant turn may carry ``tool_calls`` and a
``tool`` turn carries one tool's result; both become text in the Hermes format that
:mod:`gateway.api.tool_calls` renders tools in. This module knows nothing about sampling or HTTP.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway.api.tool_calls import render_call, render_result
from gateway.api.tool_protocol import ToolCall
from serve.engine import Message


class ChatMessage(BaseModel):
    """One input message; content is a string or a list of text parts."""

    role: Literal["developer", "system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, max_length=64, description="An assistant's calls.")
    tool_call_id: str | None = Field(None, description="The call a tool message answers.")

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            texts = []
            for part in value:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise ValueError(f"only text content parts are supported, got '{kind}'")
                texts.append(part["text"])
            return "".join(texts)
        if value is not None and not isinstance(value, str):
            raise ValueError("must be a string or a list of text parts")
        return value

    @model_validator(mode="after")
    def _tool_fields_by_role(self):
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has one")
        return self

    def to_engine(self) -> Message:
        if self.role == "tool":
            return Message("user", render_result(self.content or ""))
        content = self.content or ""
        if self.tool_calls:
            content = "\n".join(([content] if content else []) + [render_call(call) for call in self.tool_calls])
        return Message("system" if self.role == "developer" else self.role, content)
