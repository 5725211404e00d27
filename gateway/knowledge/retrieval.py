"""How a retrieval is asked for on the wire and the command line: one model, built on rag's options.

:class:`RetrievalFields` is the one wire model of ``rag.query.RetrievalOptions``' request fields
(``top_k``, ``mode``, ``min_score``, ``filters``), each with its one limit; the ``rag`` chat
extension and the search route inherit it, and ``lorag kb search`` fills it. :class:`Retrieval`
is the validated value the knowledge service takes, the same fields plus the knowledge base, and
turns itself into rag's options (:meth:`RetrievalFields.options`). A retriever stage adds its
option to ``RetrievalOptions`` and to this model, nowhere else. Limits and defaults come from
:mod:`rag.query`, which loads no index, so the OpenAI protocol module can import this one
without FAISS, BM25 or pymilvus. This module knows nothing about HTTP or engines.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rag.query import DEFAULT_TOP_K, MAX_TOP_K, Mode, RetrievalOptions, check_filters


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


class RetrievalFields(BaseModel):
    """The retrieval options a request may give (``rag.query.RetrievalOptions``' request fields)."""

    top_k: TopK = DEFAULT_TOP_K
    mode: Mode = "hybrid"
    min_score: MinScore = None
    filters: Filters = Field(default_factory=dict)

    def options(self) -> RetrievalOptions:
        """These fields as rag's options."""
        return RetrievalOptions(**self.model_dump(include=set(RetrievalFields.model_fields)))


class Retrieval(RetrievalFields):
    """What to retrieve from which knowledge base; invalid options raise pydantic's ValidationError."""

    model_config = ConfigDict(frozen=True)

    kb: str
