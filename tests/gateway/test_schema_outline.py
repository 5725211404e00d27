"""How a response format's JSON schema is shown to the model: an outline of the object, not JSON Schema text."""

from __future__ import annotations

from typing import Literal

from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel

from gateway.api.protocol import ChatCompletionRequest
from gateway.api.tool_protocol import schema_outline


class Stop(BaseModel):
    name: str
    minutes: int


class Trip(BaseModel):
    city: str
    days: int
    budget: float | None = None
    transport: Literal["plane", "train"]
    stops: list[Stop]
    tags: list[str]
    booked: bool


def test_a_pydantic_model_as_the_sdk_sends_it_becomes_an_outline():
    assert schema_outline(to_strict_json_schema(Trip)) == (
        '{"city": string, "days": integer, "budget": number | null, "transport": "plane" | "train", '
        '"stops": [{"name": string, "minutes": integer}, ...], "tags": [string, ...], "booked": true | false}'
    )


def test_consts_type_lists_free_objects_and_unknown_references():
    assert schema_outline({"const": "x"}) == '"x"'
    assert schema_outline({"type": ["string", "null"]}) == "string | null"
    assert schema_outline({"type": "object"}) == "{...}"
    assert schema_outline({"$ref": "#/$defs/missing"}) == "any"
    assert schema_outline({}) == "any"


def test_a_recursive_schema_ends():
    kids = {"type": "array", "items": {"$ref": "#/$defs/n"}}
    tree = {"$defs": {"n": {"type": "object", "properties": {"kids": kids}}}, "$ref": "#/$defs/n"}
    assert schema_outline(tree).count("kids") < 10 and schema_outline(tree).endswith("}")


def test_the_system_message_shows_the_outline_and_the_schema_still_constrains():
    schema = to_strict_json_schema(Trip)
    request = ChatCompletionRequest(
        model="m",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plan a trip."}],
        response_format={"type": "json_schema", "json_schema": {"name": "trip", "schema": schema, "strict": True}},
    )
    [messages], params = request.engine_inputs()
    assert messages[0].content.startswith('Be brief.\n\nReply with a JSON object of this form:\n{"city": string')
    assert '"$defs"' not in messages[0].content and '"title"' not in messages[0].content
    assert params.json_schema is not None and '"$defs"' in params.json_schema  # the user's schema, unchanged
