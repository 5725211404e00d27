"""How a retrieval is asked for: each option declared once, with one limit, for the wire and the CLI.

``TopK``, ``MinScore`` and ``Filters`` are the annotated types that every request model with
retrieval options uses (the ``rag`` chat extension, the search route); :class:`Retrieval` is the
validated value the knowledge service takes, the same options plus the knowledge base. Limits
and defaults come from :mod:`rag.query`, which loads no index, so the OpenAI protocol module
can import this one without FAISS or BM25. This module knows nothing about HTTP or engines.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from rag.query import DEFAULT_TOP_K, MAX_TOP_K, Mode, check_filters


def _checked_filters(filters: dict[str, Any]) -> dict[str, Any]:
    check_filters(filters)  # InvalidFilter is a ValueError: a validation error naming what is wrong
    return filters


TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, description=f"Sources retrieved (default {DEFAULT_TOP_K}).")]
MinScore = Annotated[
    float | None, Field(allow_inf_nan=False, description="Drop sources scoring below this (see docs/rag.md).")
]
Filters = Annotated[
    dict[str, Any],
    AfterValidator(_checked_filters),
    Field(
        description="filename, document_id or a metadata key -> a value (string, number, boolean) or a list; "
        "or OpenAI's comparison/compound filter object (docs/rag.md)."
    ),
]


@dataclass(frozen=True)
class Retrieval:
    """What to retrieve from which knowledge base; invalid options raise pydantic's ValidationError."""

    kb: str
    top_k: TopK = DEFAULT_TOP_K
    mode: Mode = "hybrid"
    min_score: MinScore = None
    filters: Filters = Field(default_factory=dict)
