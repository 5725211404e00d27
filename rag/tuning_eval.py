"""How well an embedder finds the chunks of held-out pairs: recall@1, recall@10 and nDCG@10, dense and hybrid.

Each held-out pair's query is ranked against a pool of the knowledge base's chunks (all of them,
or a random `pool` of them that always holds the pairs' own chunks), embedded by the embedder
under test; hybrid fuses that ranking with BM25 over the same pool by reciprocal rank, as
`rag.retriever` does. One relevant chunk per query, so nDCG@10 is 1/log2(rank+1) within the
top 10. This module knows nothing about training.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

from rag.embedder import Embedder, embed_all
from rag.index import BM25Index, DenseIndex
from rag.retriever import FUSION_DEPTH, reciprocal_rank_fusion
from rag.store import KnowledgeBase
from rag.tuning_pairs import Pair

DEPTH = 10


def pool_ids(kb: KnowledgeBase, pairs: Sequence[Pair], size: int, seed: int = 0) -> np.ndarray:
    """The chunk ids a held-out query is ranked against: the pairs' chunks and others, `size` in all at most."""
    every = kb.database.chunk_ids()
    if len(every) <= size:
        return every
    own = {pair.chunk_id for pair in pairs}
    others = [int(i) for i in every if int(i) not in own]
    return np.asarray(sorted(own | set(random.Random(seed).sample(others, max(0, size - len(own))))), np.int64)


def evaluate(kb: KnowledgeBase, embedder: Embedder, pairs: Sequence[Pair], pool: np.ndarray) -> dict[str, float]:
    """{"dense_recall@1", "dense_recall@10", "dense_ndcg@10", and the same for hybrid} over `pairs`."""
    if not pairs:
        return {}
    chunks = kb.database.chunks(pool.tolist())
    ids = [int(i) for i in pool if int(i) in chunks]
    texts = [chunks[i].indexed_text for i in ids]
    index, bm25 = DenseIndex(embedder.dimension), BM25Index()
    index.add(ids, embed_all(embedder, texts))
    bm25.add(ids, texts)
    queries = embedder.embed([pair.query for pair in pairs])
    sums: dict[str, float] = {}
    for pair, vector in zip(pairs, queries, strict=True):
        dense = index.search(vector, FUSION_DEPTH)
        hybrid = reciprocal_rank_fusion([dense, bm25.search(pair.query, FUSION_DEPTH)], [1.0, 1.0])
        for mode, ranking in (("dense", dense), ("hybrid", hybrid)):
            ranked = [chunk_id for chunk_id, _ in ranking[:DEPTH]]
            rank = ranked.index(pair.chunk_id) + 1 if pair.chunk_id in ranked else None
            for metric, value in (
                ("recall@1", float(rank == 1)),
                ("recall@10", float(rank is not None)),
                ("ndcg@10", 1 / math.log2(rank + 1) if rank else 0.0),
            ):
                sums[f"{mode}_{metric}"] = sums.get(f"{mode}_{metric}", 0.0) + value
    return {name: round(total / len(pairs), 4) for name, total in sums.items()}
