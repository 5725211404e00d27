"""OpenAI's Responses API request as lorag reads it: ``POST /v1/responses``, fields in the reference's order.

Input items are messages (string content, or ``input_text``/``output_text`` parts), ``function_call``
and ``function_call_output`` items, and ``file_search_call`` items passed back (kept for the
record, not shown to the model). Tools are flat ``function`` tools and ``file_search`` (a vector
store id is a knowledge base's name; its ``filters`` are rag's, checked here). Fields lorag cannot
honour (``background``, ``reasoning``, ``conversation``, ``prompt``, built-in tools other than
``file_search``, ...) are refused with a 400 naming them; unknown fields are logged once and
ignored, as chat does. Lorag extensions are marked ``# extension``. How the request becomes a chat
request is :mod:`gateway.responses.translate`'s business; this module knows nothing about engines,
storage or HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.api.protocol import ACCEPTED, NOT_SUPPORTED, Seed, _Request
from gateway.api.tool_protocol import NAME, JsonSchemaFormat, ResponseFormat, Schema
from gateway.errors import invalid
from gateway.knowledge.retrieval import Filters
from gateway.metadata import Metadata
from rag.query import DEFAULT_TOP_K, MAX_TOP_K

ITEM_TYPES = ("message", "function_call", "function_call_output", "file_search_call")
TOOL_TYPES = ("function", "file_search")
INCLUDABLE = "file_search_call.results"
IGNORED_INCLUDES = {  # OpenAI's includables for outputs lorag never makes: nothing to include
    "code_interpreter_call.outputs", "computer_call_output.output.image_url", "message.input_image.image_url",
    "reasoning.encrypted_content", "web_search_call.action.sources", "web_search_call.results",
}  # fmt: skip


def _text_parts(value: Any) -> Any:
    if isinstance(value, list):
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind not in ("input_text", "output_text") or not isinstance(part.get("text"), str):
                raise ValueError(f"only text content parts (input_text, output_text) are supported, got '{kind}'")
    elif not isinstance(value, str):
        raise ValueError("must be a string or a list of input_text parts")
    return value


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an output_text passed back carries annotations, logprobs

    type: Literal["input_text", "output_text"]
    text: str


Content = Annotated[str | list[TextPart], BeforeValidator(_text_parts)]


class MessageItem(BaseModel):
    """A message: ``{"role", "content"}``, the easy form, or the full item with ``type`` and ``id``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: Content
    status: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class FunctionCallItem(BaseModel):
    """A call the model made earlier (an output item passed back as input)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function_call"]
    id: str | None = None
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    status: str | None = None


class FunctionCallOutputItem(BaseModel):
    """The result of a function call, for the model to read."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function_call_output"]
    id: str | None = None
    call_id: str = Field(min_length=1)
    output: Content
    status: str | None = None

    def text(self) -> str:
        return self.output if isinstance(self.output, str) else "".join(p.text for p in self.output)


class FileSearchCallItem(BaseModel):
    """A file search made earlier, passed back: kept in the record; the model sees the answer, not the call."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["file_search_call"]
    id: str
    queries: list[str] = []
    status: str | None = None
    results: list[dict[str, Any]] | None = None


def _item_type(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get("type", "message" if "role" in value else None)
        if kind not in ITEM_TYPES:
            raise ValueError(f"input item type '{kind}' is not supported by lorag; use one of {', '.join(ITEM_TYPES)}")
        return {**value, "type": kind}
    return value


Item = Annotated[
    Annotated[
        MessageItem | FunctionCallItem | FunctionCallOutputItem | FileSearchCallItem, Field(discriminator="type")
    ],
    BeforeValidator(_item_type),
]


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    name: str = Field(pattern=NAME)
    description: str | None = None
    parameters: Schema | None = None
    strict: bool | None = None


class RankingOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hybrid_search: dict[str, Any] | None = Field(None, description=ACCEPTED + " lorag fuses BM25 and dense equally.")
    ranker: str | None = Field(None, description=ACCEPTED)
    score_threshold: float | None = Field(None, ge=0, le=1, description="Drop results scoring below this.")


class FileSearchTool(BaseModel):
    """Retrieval from knowledge bases: each vector store id is a knowledge base's name."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["file_search"]
    vector_store_ids: list[str] = Field(min_length=1, max_length=16)
    filters: Filters | None = None
    max_num_results: int = Field(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="Results over all stores.")
    ranking_options: RankingOptions | None = None


def _tool_type(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") not in TOOL_TYPES:
        raise ValueError(f"the tool type '{value.get('type')}' is not supported by lorag (only function, file_search)")
    return value


Tool = Annotated[Annotated[FunctionTool | FileSearchTool, Field(discriminator="type")], BeforeValidator(_tool_type)]


class FunctionChoice(BaseModel):
    type: Literal["function"]
    name: str


class FileSearchChoice(BaseModel):
    type: Literal["file_search"]


ToolChoice = Literal["none", "auto", "required"] | FunctionChoice | FileSearchChoice


class TextFormat(BaseModel):
    """``text.format``: ``text``, ``json_object``, or ``json_schema`` with its name and schema inline."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, pattern=NAME)
    schema_: Schema | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self):
        if self.type == "json_schema" and (self.name is None or self.schema_ is None):
            raise ValueError("a json_schema format needs a name and a schema")
        return self

    def response_format(self) -> ResponseFormat:
        """The chat pipeline's ``response_format`` for this format."""
        if self.type != "json_schema":
            return ResponseFormat(type=self.type)
        schema = JsonSchemaFormat(name=self.name, description=self.description, schema=self.schema_, strict=self.strict)
        return ResponseFormat(type="json_schema", json_schema=schema)


def _refuse(value: Any) -> Any:
    if value:
        raise ValueError("not supported by lorag")
    return value


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: TextFormat = Field(default_factory=lambda: TextFormat(type="text"))
    verbosity: Annotated[str | None, BeforeValidator(_refuse)] = Field(None, description=NOT_SUPPORTED)


def _no_reasoning(value: Any) -> Any:
    if value and (not isinstance(value, dict) or any(v is not None for v in value.values())):
        raise ValueError("not supported by lorag: its models do not reason")
    return value


Refused = Annotated[Any, BeforeValidator(_refuse), Field(description=NOT_SUPPORTED)]


class ResponseCreate(_Request):
    """POST /v1/responses."""

    background: Refused = None
    context_management: Refused = None
    conversation: Refused = None
    include: list[str] | None = Field(None, description=f"Only '{INCLUDABLE}' has an effect.")
    input: list[Item] | str = Field(min_length=1)
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    max_tool_calls: int | None = Field(None, ge=0, description="0: no file search.")
    metadata: Metadata | None = None
    model: str
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    prompt: Refused = None
    prompt_cache_key: str | None = Field(None, description=ACCEPTED)
    prompt_cache_retention: str | None = Field(None, description=ACCEPTED)
    reasoning: Annotated[Any, BeforeValidator(_no_reasoning)] = Field(None, description=NOT_SUPPORTED)
    safety_identifier: str | None = Field(None, description=ACCEPTED)
    service_tier: str | None = Field(None, description=ACCEPTED)
    store: bool = True
    stream: bool = False
    stream_options: dict[str, Any] | None = Field(None, description=ACCEPTED)
    temperature: float = Field(1.0, ge=0, le=2)
    text: TextConfig = Field(default_factory=TextConfig)
    tool_choice: ToolChoice = "auto"
    tools: list[Tool] = Field([], max_length=128)
    top_logprobs: Refused = None
    top_p: float = Field(1.0, ge=0, le=1)
    truncation: Literal["auto", "disabled"] = "disabled"
    user: str | None = None
    seed: Seed = None  # extension (as chat's): reproducible sampling

    @field_validator("include")
    @classmethod
    def _known_includes(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if name != INCLUDABLE and name not in IGNORED_INCLUDES:
                raise ValueError(f"'{name}' cannot be included by lorag (only '{INCLUDABLE}')")
        return value

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(cls, value: dict | None, info: ValidationInfo) -> dict | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("only allowed when stream is true")
        return value

    def check_tools(self) -> None:
        """400 naming the field unless the tools and ``tool_choice`` fit together (checked before any work)."""
        functions = [t.name for t in self.tools if isinstance(t, FunctionTool)]
        if len(set(functions)) != len(functions):
            raise invalid("tools", "Invalid 'tools': two functions have the same name")
        searches = [t for t in self.tools if isinstance(t, FileSearchTool)]
        if len(searches) > 1:
            raise invalid("tools", "Invalid 'tools': at most one file_search tool")
        choice, problem = self.tool_choice, None
        if isinstance(choice, FunctionChoice) and choice.name not in functions:
            problem = f"it names '{choice.name}', which is not among the function tools"
        elif isinstance(choice, FileSearchChoice) and not searches:
            problem = "file_search needs a file_search tool"
        elif choice == "required" and not self.tools:
            problem = "'required' needs tools"
        if problem:
            raise invalid("tool_choice", f"Invalid 'tool_choice': {problem}")

    @property
    def file_search(self) -> FileSearchTool | None:
        """The file search this request makes (none with ``tool_choice`` none or ``max_tool_calls`` 0)."""
        if self.tool_choice == "none" or self.max_tool_calls == 0 or isinstance(self.tool_choice, FunctionChoice):
            return None
        return next((t for t in self.tools if isinstance(t, FileSearchTool)), None)

    def items(self) -> list[MessageItem | FunctionCallItem | FunctionCallOutputItem | FileSearchCallItem]:
        """The input as items: a string is one user message."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)
