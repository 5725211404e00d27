"""The retrieval options as ``lorag`` command options, declared once for every command that retrieves.

``lorag kb search`` and ``lorag kb raft-data`` take these four options and build the one wire
model, :class:`gateway.knowledge.retrieval.RetrievalFields`, from them, so a bad value fails the
same way as on the API (one line, naming the option). This module knows nothing about what the
commands do with the options.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import ValidationError

from gateway.cli.common import fail, invalid_option
from gateway.knowledge.retrieval import Retrieval
from rag.query import DEFAULT_TOP_K

TopK = Annotated[int, typer.Option(help="How many chunks.")]
Mode = Annotated[str, typer.Option(help="hybrid, dense or bm25.")]
MinScore = Annotated[float | None, typer.Option(help="Drop chunks scoring below this (see docs/rag.md).")]
Filters = Annotated[
    str | None, typer.Option(help='A JSON object: filename, document_id or a metadata key, e.g. {"team": "a"}.')
]
DEFAULTS = {"top_k": DEFAULT_TOP_K, "mode": "hybrid", "min_score": None, "filters": None}


def retrieval(kb: str, top_k: int, mode: str, min_score: float | None, filters: str | None) -> Retrieval:
    """The options as the knowledge service takes them; one line and exit 1 for a bad one."""
    try:
        return Retrieval(kb=kb, top_k=top_k, mode=mode, min_score=min_score, filters=json_object(filters, "--filters"))
    except ValidationError as e:
        fail(invalid_option(e))


def json_object(text: str | None, option: str) -> dict:
    """The JSON object `text` ({} for None); one line and exit 1 if it is not one."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object")
    return value
