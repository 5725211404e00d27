"""Default bounds for the JSON schemas that constrain a reply: arrays and strings a small model must close.

A grammar keeps JSON valid but does not stop a small model from looping inside an array
(``["Movie", "Movie", "Movie", ...``) or a string (``"./Paris_2023_2023_2023...``) until
``max_tokens`` runs out, and a reply cut there does not parse. :func:`bounded` gives every array
without ``maxItems`` a ``maxItems`` of :data:`MAX_ITEMS`, and every free string (no
``maxLength``, ``enum``, ``const``, ``pattern`` or ``format``) a ``maxLength`` of
:data:`MAX_LENGTH`. Bounds the schema already has always win, and a default is never below the
schema's own ``minItems``/``minLength``: every value valid against the bounded schema is valid
against the user's. Only schema positions are touched (``properties`` values, ``items``,
``anyOf`` members, ``$defs``, ...), never a property that happens to be named ``type``. Both
engines compile the bounded schema. This module knows nothing about engines or HTTP.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

MAX_ITEMS = 8  # items of an array whose schema sets no maxItems
MAX_LENGTH = 200  # characters of a free string whose schema sets no maxLength
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMAS = ("items", "additionalProperties", "unevaluatedProperties", "contains", "not", "if", "then", "else")
_FIXED_STRINGS = ("maxLength", "enum", "const", "pattern", "format")


def bounded(schema: Any, max_items: int = MAX_ITEMS, max_length: int = MAX_LENGTH) -> Any:
    """A copy of ``schema`` with default ``maxItems``/``maxLength`` where it sets none (see the module docstring)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: bounded(sub, max_items, max_length) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [bounded(sub, max_items, max_length) for sub in out[key]]
    for key in _SCHEMAS:
        if isinstance(out.get(key), dict):
            out[key] = bounded(out[key], max_items, max_length)
    types = out.get("type")
    types = {types} if isinstance(types, str) else set(types) if isinstance(types, list) else set()
    if "array" in types and "maxItems" not in out:
        out["maxItems"] = max(max_items, _int(out.get("minItems")), len(out.get("prefixItems") or ()))
    if "string" in types and not any(key in out for key in _FIXED_STRINGS):
        out["maxLength"] = max(max_length, _int(out.get("minLength")))
    return out


@lru_cache(maxsize=256)
def bounded_text(schema: str) -> str:
    """:func:`bounded` of a schema given as JSON text, as JSON text; text that is no JSON object is kept as it is."""
    try:
        value = json.loads(schema)
    except ValueError:
        return schema
    return json.dumps(bounded(value)) if isinstance(value, dict) else schema


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
