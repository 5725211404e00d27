"""Rank a knowledge base's chunks for a query: dense, BM25, or both fused by reciprocal rank.

Scores by mode: "dense" gives the cosine similarity of query and chunk (-1..1); "bm25" gives
the BM25 score (0..unbounded); "hybrid" gives the reciprocal rank fusion score
sum_i w_i / (rrf_k + rank_i), divided by its largest possible value so that 1.0 means first in
both lists. `min_score` is compared with the score of the chosen mode. What may be asked for is
`rag.query.RetrievalOptions`, checked there. Filters restrict the
search to chunks whose document matches (see `ChunkDatabase.chunk_ids`). This module knows
nothing about storage formats or prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rag.query import RetrievalOptions
from rag.store import KnowledgeBase

FUSION_DEPTH = 100
"""Candidates taken from each ranking before fusion (at least top_k)."""


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with what is needed to cite it."""

    chunk_id: int
    document_id: str
    filename: str
    text: str
    score: float
    page: int | None
    section: str | None
    start: int
    end: int
    metadata: dict[str, Any]
    """The metadata of the chunk's document."""


def retrieve(
    kb: KnowledgeBase,
    query: str,
    options: RetrievalOptions | None = None,
    *,
    depth: int | None = None,
    rrf_k: int = 60,
    **fields: Any,
) -> list[Hit]:
    """The `options.top_k` best chunks of `kb` for `query`, best first. `fields` (RetrievalOptions' fields)
    replace those of `options`; `depth` replaces `top_k` with more than a request may ask for (evaluation)."""
    options = replace(options or RetrievalOptions(), **fields) if fields else options or RetrievalOptions()
    top_k, mode = depth or options.top_k, options.mode
    if not query.strip():
        return []
    modes = ("dense", "bm25") if mode == "hybrid" else (mode,)
    rankings = kb.rankings(query, modes, top_k if mode != "hybrid" else max(top_k, FUSION_DEPTH), options.filters)
    if mode == "hybrid":
        weights = [options.dense_weight, options.bm25_weight]
        ranked = reciprocal_rank_fusion([rankings["dense"], rankings["bm25"]], weights, rrf_k=rrf_k)
    else:
        ranked = rankings[mode]
    floor = options.min_score
    ranked = [(chunk_id, score) for chunk_id, score in ranked if floor is None or score >= floor][:top_k]
    chunks = kb.chunks([chunk_id for chunk_id, _ in ranked])
    return [
        Hit(c.id, c.document_id, c.filename, c.text, score, c.page, c.section, c.start, c.end, c.metadata)
        for chunk_id, score in ranked
        if (c := chunks.get(chunk_id)) is not None  # None only while a deletion is being applied
    ]


def reciprocal_rank_fusion(
    rankings: list[list[tuple[int, float]]], weights: list[float], *, rrf_k: int = 60
) -> list[tuple[int, float]]:
    """Fuse rankings of (id, score), best first, into one; scores scaled so 1.0 is first everywhere."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (rrf_k + rank)
    best_possible = sum(weights) / (rrf_k + 1)
    return sorted(((item, score / best_possible) for item, score in fused.items()), key=lambda p: -p[1])
