"""OpenAI's grader templates: ``{{ item.answer }}``, ``{{ sample.output_text }}``, ``{{ sample.output_json.x }}``.

A template is text with ``{{ namespace.path }}`` placeholders; the namespaces are ``item`` (the data row) and
``sample`` (the model's answer: ``output_text``, and ``output_json`` when the answer is JSON). A path walks
dicts by key and lists by index (``item.refs.0`` or ``item.refs[0]``). Strings are put in as they are, other
values as JSON. Nothing else is evaluated: no expressions, filters or code. This module knows nothing about
graders.
"""

from __future__ import annotations

import json
import re

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PATH = re.compile(r"^(item|sample)((?:\.[A-Za-z0-9_\-]+|\[\d+\])*)$")
STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")


class TemplateError(ValueError):
    """A placeholder that is not a variable, or one the item or sample does not have."""


def sample_namespace(output_text: str) -> dict:
    """The ``sample`` namespace of one answer: its text, and its JSON when it parses as a JSON object or list."""
    try:
        parsed = json.loads(output_text)
    except (json.JSONDecodeError, RecursionError):
        parsed = None
    return {"output_text": output_text, "output_json": parsed if isinstance(parsed, dict | list) else None}


def check_template(text: str) -> None:
    """ValueError for a placeholder that is not ``item.<path>`` or ``sample.<path>``."""
    for found in PLACEHOLDER.finditer(text):
        if not PATH.match(found.group(1)):
            raise TemplateError(f"'{{{{ {found.group(1)} }}}}' is not a variable: use item.<field> or sample.<field>")


def render(text: str, item: object, sample: dict) -> str:
    """``text`` with every placeholder replaced; :class:`TemplateError` for a variable that is not there."""
    namespaces = {"item": item, "sample": sample}

    def value(found: re.Match) -> str:
        path = PATH.match(found.group(1))
        if not path:
            raise TemplateError(f"'{{{{ {found.group(1)} }}}}' is not a variable")
        current = namespaces[path.group(1)]
        for key, index in STEP.findall(path.group(2)):
            try:
                current = current[int(index or key)] if isinstance(current, list) else current[key]
            except (KeyError, IndexError, TypeError, ValueError):
                raise TemplateError(f"{found.group(1)} is not in the {path.group(1)}") from None
        return current if isinstance(current, str) else json.dumps(current)

    return PLACEHOLDER.sub(value, text)
