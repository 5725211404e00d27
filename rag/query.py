"""What a retrieval may ask for: the modes, how many chunks, and the grammar of filters.

Declared once, here, for the retriever, the chunk database and every caller that validates a
request before it reaches them (the gateway's wire models import this module without loading
FAISS or BM25). This module knows nothing about indexes or storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from rag.errors import InvalidFilter

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
DEFAULT_TOP_K = 4
"""Chunks a retrieval returns (and a RAG chat puts into the prompt) unless asked otherwise."""
MAX_TOP_K = 50
"""The most chunks one retrieval may ask for."""
METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_INT64 = range(-(2**63), 2**63)


def check_filters(filters: Mapping[str, Any]) -> None:
    """Raise :class:`~rag.errors.InvalidFilter`, naming the key, unless every filter maps a valid key to a
    value or a list of values, each a string, a number (a 64-bit integer or a float) or a boolean."""
    if not isinstance(filters, Mapping):
        raise InvalidFilter(f"filters must be an object mapping keys to values, not {type(filters).__name__}")
    for key, value in filters.items():
        if not isinstance(key, str) or not METADATA_KEY.fullmatch(key):
            raise InvalidFilter(f"invalid filter key {key!r}: use letters, digits, '_', '.' and '-'")
        for item in value if isinstance(value, list | tuple | set) else [value]:
            if isinstance(item, int) and item not in _INT64:
                raise InvalidFilter(f"filter {key!r}: the integer {item} is out of the 64-bit range")
            if not isinstance(item, str | int | float):
                raise InvalidFilter(
                    f"filter {key!r}: {_kind(item)} is not a filter value; give a string, number or boolean, "
                    "or a list of them (any one matches)"
                )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | tuple | set):
        return "a nested list"
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"
