"""What a retrieval may ask for: :class:`RetrievalOptions` (mode, how many chunks, a score floor,
filters, fusion weights) with their limits, and the grammar of filters.

Declared once, here, for the retriever, both knowledge-base backends (the folder and Milvus) and
every caller that validates a request before it reaches them (the gateway's wire models import
this module without loading FAISS, BM25 or pymilvus). A retriever stage adds its option here and
to the gateway's one wire model (``gateway.knowledge.retrieval.RetrievalFields``). This module
knows nothing about indexes or storage.

Filters take two forms, both parsed by :func:`parse_filters` into one tree of
:class:`Comparison` and :class:`Compound` nodes:

- a flat mapping ``{key: value or [values]}``: every key must match (a list: any of its values);
- OpenAI's filter objects as they are: a comparison ``{"type": "eq|ne|gt|gte|lt|lte|in|nin",
  "key": ..., "value": ...}`` or a compound ``{"type": "and|or", "filters": [...]}``, nested. A
  mapping is read as such an object when it has ``type`` and ``key`` or ``filters`` and no other
  keys than ``type``, ``key``, ``value``, ``filters``.

A key is ``filename``, ``document_id`` or a metadata key. ``ne`` and ``nin`` also match documents
without the key; ``gt``..``lte`` compare numbers with numbers and strings with strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rag.errors import InvalidFilter, InvalidMode

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
DEFAULT_TOP_K = 4
"""Chunks a retrieval returns (and a RAG chat puts into the prompt) unless asked otherwise."""
MAX_TOP_K = 50
"""The most chunks one retrieval may ask for."""
METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class RetrievalOptions:
    """How to retrieve; checked when made (ValueError, InvalidMode or InvalidFilter naming the option at fault)."""

    top_k: int = DEFAULT_TOP_K
    """Chunks returned, 1..MAX_TOP_K."""
    mode: Mode = "hybrid"
    """dense (embeddings), bm25 (words) or hybrid (both, fused by reciprocal rank; see `rag.retriever`)."""
    min_score: float | None = None
    """Drop chunks scoring below this in the chosen mode's scale (see `rag.retriever`); None keeps all."""
    filters: Mapping[str, Any] | None = None
    """Restrict to documents matching this filter (the grammar below); None or {} for all."""
    dense_weight: float = 1.0
    """Weight of the dense ranking in hybrid fusion."""
    bm25_weight: float = 1.0
    """Weight of the BM25 ranking in hybrid fusion."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidMode(f"unknown retrieval mode {self.mode!r}; use one of {', '.join(MODES)}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be an integer from 1 to {MAX_TOP_K}, not {self.top_k!r}")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise ValueError(f"min_score must be a finite number, not {self.min_score!r}")
        if min(self.dense_weight, self.bm25_weight) < 0 or self.dense_weight + self.bm25_weight <= 0:
            raise ValueError("dense_weight and bm25_weight must be >= 0 and not both 0")
        check_filters(self.filters)


COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
MAX_FILTER_DEPTH = 8
MAX_COMPARISONS = 100
_OBJECT_KEYS = frozenset({"type", "key", "value", "filters"})
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Comparison:
    """``key`` compared with ``value`` by ``op`` (one of :data:`COMPARISONS`; in/nin: a tuple of values)."""

    op: str
    key: str
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class Compound:
    """``op`` ("and" or "or") over one or more filters."""

    op: str
    filters: tuple[Comparison | Compound, ...]


Filter = Comparison | Compound


def check_filters(filters: Any) -> None:
    """Raise :class:`~rag.errors.InvalidFilter`, naming what is wrong, unless ``filters`` is a valid filter."""
    parse_filters(filters)


def parse_filters(filters: Any) -> Filter | None:
    """The filter tree of a flat mapping or an OpenAI filter object (None for an empty mapping or None);
    :class:`~rag.errors.InvalidFilter` naming the part at fault otherwise."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise InvalidFilter(f"filters must be an object mapping keys to values, not {type(filters).__name__}")
    counter = [0]
    if is_filter_object(filters):
        return _object(filters, "filters", 1, counter)
    comparisons = []
    for key, value in filters.items():
        _key(key, "filter key")
        if isinstance(value, list | tuple | set):
            comparisons.append(Comparison("in", key, tuple(_scalar(item, f"filter {key!r}") for item in value)))
        else:
            comparisons.append(Comparison("eq", key, _scalar(value, f"filter {key!r}")))
    return None if not comparisons else Compound("and", tuple(comparisons))


def is_filter_object(filters: Mapping[str, Any]) -> bool:
    """Whether a mapping is an OpenAI filter object rather than a flat mapping (see the module docstring)."""
    return "type" in filters and ("key" in filters or "filters" in filters) and set(filters) <= _OBJECT_KEYS


def _object(node: Any, where: str, depth: int, counter: list[int]) -> Filter:
    if not isinstance(node, Mapping):
        raise InvalidFilter(f"{where} must be a filter object, not {_kind(node)}")
    kind = node.get("type")
    if kind in COMPOUNDS:
        if depth > MAX_FILTER_DEPTH:
            raise InvalidFilter(f"{where}: filters nest at most {MAX_FILTER_DEPTH} deep")
        _only(node, {"type", "filters"}, where)
        items = node.get("filters")
        if not isinstance(items, list | tuple) or not items:
            raise InvalidFilter(f"{where}.filters must be a non-empty list of filter objects")
        return Compound(kind, tuple(_object(item, f"{where}.filters[{i}]", depth + 1, counter)
                                    for i, item in enumerate(items)))  # fmt: skip
    if kind not in COMPARISONS:
        raise InvalidFilter(
            f"{where}.type is {kind!r}: use one of {', '.join(COMPARISONS)} (comparison) or and, or (compound)"
        )
    _only(node, {"type", "key", "value"}, where)
    counter[0] += 1
    if counter[0] > MAX_COMPARISONS:
        raise InvalidFilter(f"filters: at most {MAX_COMPARISONS} comparisons")
    if "value" not in node:
        raise InvalidFilter(f"{where}: a '{kind}' comparison needs a value")
    key, value = _key(node.get("key"), f"{where}.key"), node["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list | tuple):
            raise InvalidFilter(f"{where}.value: '{kind}' compares with a list of values, not {_kind(value)}")
        return Comparison(kind, key, tuple(_scalar(item, f"{where}.value") for item in value))
    value = _scalar(value, f"{where}.value")
    if kind in ("gt", "gte", "lt", "lte") and isinstance(value, bool):
        raise InvalidFilter(f"{where}.value: '{kind}' compares numbers or strings, not a boolean")
    return Comparison(kind, key, value)


def _only(node: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if extra := sorted(set(node) - allowed):
        raise InvalidFilter(f"{where}: unexpected field {extra[0]!r} in a '{node['type']}' filter")


def _key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not METADATA_KEY.fullmatch(key):
        raise InvalidFilter(f"invalid {where} {key!r}: use letters, digits, '_', '.' and '-'")
    return key


def _scalar(item: Any, where: str) -> Scalar:
    if isinstance(item, int) and not isinstance(item, bool) and item not in _INT64:
        raise InvalidFilter(f"{where}: the integer {item} is out of the 64-bit range")
    if isinstance(item, float) and not math.isfinite(item):
        raise InvalidFilter(f"{where}: {item} is not a filter value")
    if not isinstance(item, str | int | float):
        raise InvalidFilter(
            f"{where}: {_kind(item)} is not a filter value; give a string, number or boolean, "
            "or a list of them (any one matches)"
        )
    return item


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | tuple | set):
        return "a nested list"
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"
