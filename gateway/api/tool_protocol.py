"""OpenAI's request types for tools and structured outputs: tool definitions, tool choice, tool calls, response formats.

Fields in the reference's order. ``json_schema.schema`` is read under its wire name (pydantic
keeps ``schema`` for itself). A JSON schema response format is shown to the model as an outline
of the object it must write (:func:`schema_outline`), not as JSON Schema text: a small model
shown ``{"landmarks": {"items": {"type": "string"}, "title": "Landmarks", "type": "array"}}``
fills the list with ``".landmarks.list"``; shown ``{"landmarks": [string, ...]}`` it names
landmarks. This module knows nothing about engines or how tool calls are rendered and parsed
(:mod:`gateway.api.tool_calls` does that).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's rule for function and schema names
MAX_SCHEMA_CHARS = 64_000


def _bounded_schema(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value)) > MAX_SCHEMA_CHARS:
        raise ValueError(f"a schema may have at most {MAX_SCHEMA_CHARS} characters")
    return value


Schema = Annotated[dict[str, Any], AfterValidator(_bounded_schema)]


class FunctionDefinition(BaseModel):
    name: str = Field(pattern=NAME)
    description: str | None = None
    parameters: Schema = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON schema of the arguments; the arguments of a forced call always validate against it.",
    )
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(pattern=NAME)
    description: str | None = None
    schema_: Schema = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """``text`` (free), ``json_object`` (any JSON object) or ``json_schema`` (JSON valid against a schema)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self):
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type 'json_schema', and only then")
        return self

    def instruction(self) -> str | None:
        """What lorag adds to the system message: small models keep a schema they are shown, not one they must guess."""
        if self.type == "json_object":
            return "Reply with a JSON object."
        if self.type == "json_schema":
            return f"Reply with a JSON object of this form:\n{schema_outline(self.json_schema.schema_)}"
        return None

    def schema_text(self) -> str | None:
        """The JSON schema the completion must validate against, as JSON text; None for free text."""
        if self.type == "json_object":
            return json.dumps({"type": "object"})
        if self.type == "json_schema":
            return json.dumps(self.json_schema.schema_)
        return None


_SCALARS = {"string": "string", "integer": "integer", "number": "number", "boolean": "true | false", "null": "null"}


def schema_outline(schema: Any, root: Any = None, depth: int = 0) -> str:
    """The shape of the JSON a schema describes, as a small model reads it best.

    ``{"name": string, "size": number | null, "tags": [string, ...], "kind": "a" | "b"}``:
    objects with their properties in order, arrays as ``[item, ...]``, enums and consts as their
    JSON values, unions joined by ``|``; ``$ref`` is followed (``#/$defs/...``) up to 8 levels deep.
    """
    root = schema if root is None else root
    node = _resolve(schema, root)
    if not isinstance(node, dict) or depth > 8:
        return "any"
    if "const" in node:
        return json.dumps(node["const"])
    if isinstance(node.get("enum"), list):
        return " | ".join(json.dumps(value) for value in node["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            return " | ".join(schema_outline(option, root, depth + 1) for option in node[key])
    kind = node.get("type")
    if isinstance(kind, list):
        return " | ".join(schema_outline({**node, "type": one}, root, depth + 1) for one in kind)
    if kind == "object" or isinstance(node.get("properties"), dict):
        fields = node.get("properties") or {}
        inner = (f"{json.dumps(name)}: {schema_outline(sub, root, depth + 1)}" for name, sub in fields.items())
        return "{" + ", ".join(inner) + "}" if fields else "{...}"
    if kind == "array":
        return f"[{schema_outline(node.get('items', {}), root, depth + 1)}, ...]"
    return _SCALARS.get(kind, "any")


def _resolve(schema: Any, root: Any) -> Any:
    """``schema``, or what its local ``$ref`` points to (a reference lorag cannot follow becomes ``{}``)."""
    for _ in range(8):
        if not isinstance(schema, dict) or not isinstance(schema.get("$ref"), str):
            return schema
        node = root
        for part in schema["$ref"].removeprefix("#").strip("/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) and part else node
        schema = node
    return {}
