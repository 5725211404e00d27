"""OpenAI's Responses API objects as lorag sends them: the response, its output items, input items, usage.

Fields in the order OpenAI's API sends them. Input items are stored and listed in OpenAI's item
shapes (a message with ``input_text`` parts, an assistant message with ``output_text`` parts,
``function_call``, ``function_call_output``, ``file_search_call``), each with an id. Streaming
events are built by :mod:`gateway.responses.output`. This module knows nothing about requests'
translation, engines, storage or HTTP.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

ItemStatus = Literal["in_progress", "completed", "incomplete"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class InputText(BaseModel):
    type: Literal["input_text"] = "input_text"
    text: str


class FileCitation(BaseModel):
    type: Literal["file_citation"] = "file_citation"
    file_id: str
    filename: str
    index: int  # where in the text the citation goes: after the source's [n], else at the end


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[FileCitation] = []
    logprobs: list[Any] = []


class InputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    status: ItemStatus = "completed"
    role: Literal["user", "system", "developer"]
    content: list[InputText]


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    status: ItemStatus
    content: list[OutputText]
    role: Literal["assistant"] = "assistant"


class FunctionCall(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    status: ItemStatus
    arguments: str
    call_id: str
    name: str


class FunctionCallOutput(BaseModel):
    id: str
    type: Literal["function_call_output"] = "function_call_output"
    status: ItemStatus = "completed"
    call_id: str
    output: str


class FileSearchResult(BaseModel):
    attributes: dict[str, str | float | bool] = {}
    file_id: str
    filename: str
    score: float
    text: str


class FileSearchCall(BaseModel):
    id: str
    type: Literal["file_search_call"] = "file_search_call"
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"]
    queries: list[str]
    results: list[FileSearchResult] | None = None


OutputItem = Annotated[OutputMessage | FunctionCall | FileSearchCall, Field(discriminator="type")]
StoredItem = InputMessage | OutputMessage | FunctionCall | FunctionCallOutput | FileSearchCall  # messages: by role
"""Any item of a conversation: what input_items lists, what a continued conversation is made of."""


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class Reasoning(BaseModel):
    effort: None = None
    summary: None = None


class Response(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    completed_at: int | None = None
    error: dict[str, Any] | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[OutputItem] = []
    parallel_tool_calls: bool
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    reasoning: Reasoning = Field(default_factory=Reasoning)
    safety_identifier: str | None = None
    service_tier: str = "default"
    store: bool
    temperature: float
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_logprobs: int = 0
    top_p: float
    truncation: Literal["auto", "disabled"]
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = {}

    def without_results(self) -> Response:
        """This response with its file searches' results left out (they are shown only when included)."""
        output = [item.model_copy(update={"results": None}) if isinstance(item, FileSearchCall) else item
                  for item in self.output]  # fmt: skip
        return self.model_copy(update={"output": output})


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class ItemList(BaseModel):
    """``GET /v1/responses/{id}/input_items``: OpenAI's list, ``after`` the last id of the page before."""

    object: Literal["list"] = "list"
    data: list[StoredItem]
    first_id: str | None
    last_id: str | None
    has_more: bool
