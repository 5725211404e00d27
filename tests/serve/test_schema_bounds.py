"""Default bounds on the schemas that constrain a reply: the user's bounds win, the values stay valid."""

from __future__ import annotations

import json

import jsonschema
import pytest

from serve.schema_bounds import MAX_ITEMS, MAX_LENGTH, bounded, bounded_text

CITY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "landmarks": {"type": "array", "items": {"type": "string"}},
        "kind": {"enum": ["city", "town"]},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "districts": {"type": "array", "items": {"$ref": "#/$defs/District"}, "maxItems": 40},
    },
    "$defs": {"District": {"type": "object", "properties": {"type": {"type": "string", "maxLength": 5}}}},
}


def test_arrays_and_free_strings_get_default_bounds():
    out = bounded(CITY)
    props = out["properties"]
    assert props["name"]["maxLength"] == MAX_LENGTH
    assert props["landmarks"]["maxItems"] == MAX_ITEMS and props["landmarks"]["items"]["maxLength"] == MAX_LENGTH
    assert props["nickname"]["anyOf"][0]["maxLength"] == MAX_LENGTH and "maxLength" not in props["nickname"]["anyOf"][1]
    assert "maxLength" not in props["kind"] and "maxLength" not in props["code"]  # enums and patterns are bounded
    assert "maxItems" not in out and "maxLength" not in out  # the object itself is neither


def test_the_users_bounds_win_and_no_default_falls_below_a_minimum():
    out = bounded({"type": "array", "minItems": 12, "items": {"type": "string", "minLength": 300}})
    assert out["maxItems"] == 12 and out["items"]["maxLength"] == 300
    props = bounded(CITY)["properties"]
    assert props["districts"]["maxItems"] == 40  # the user's, though above the default
    assert bounded(CITY)["$defs"]["District"]["properties"]["type"] == {"type": "string", "maxLength": 5}


def test_a_property_named_like_a_keyword_is_not_taken_for_one():
    schema = {"type": "object", "properties": {"type": {"type": "string"}, "items": {"type": "integer"}}}
    props = bounded(schema)["properties"]
    assert set(props) == {"type", "items"} and props["items"] == {"type": "integer"}


def test_what_validates_against_the_bounded_schema_validates_against_the_users():
    value = {"name": "Paris", "landmarks": ["Louvre"], "kind": "city", "code": "PAR", "nickname": None}
    jsonschema.validate(value, bounded(CITY))
    jsonschema.validate(value, CITY)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value | {"landmarks": ["x"] * (MAX_ITEMS + 1)}, bounded(CITY))


def test_bounded_text_keeps_what_is_not_an_object_schema():
    assert bounded_text("not json") == "not json"
    assert bounded_text("true") == "true"
    assert json.loads(bounded_text(json.dumps({"type": "string"}))) == {"type": "string", "maxLength": MAX_LENGTH}
