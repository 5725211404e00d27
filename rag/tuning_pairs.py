"""Training pairs for an embedder, made from a knowledge base's own chunks: (query, passage, chunk id).

Three sources, each a `Pair` whose `chunk_id` is the chunk the query must find:
- inverse cloze (`ict_pairs`): one sentence of a chunk against the rest of the chunk (its heading
  context kept), the query a sentence of the kind a reader would write;
- headings (`heading_pairs`): a chunk's heading trail (a section title, a BEIR title) against the
  chunk's text without it;
- generated (`generated_pairs`): a question a model writes for the chunk; the model is a
  callable given by the caller (the gateway sends it to a served model), so this module calls no
  model itself.

`filter_pairs` keeps a pair only if the current retriever ranks its chunk in the top `k` for its
query (a consistency filter: a query its own passage does not answer is noise), and
`mine_negatives` adds, for each kept pair, the best-ranked chunk of another document that the
retriever returns for it (a hard negative). `split_held_out` keeps the pairs of a share of the
chunks apart, so that evaluation asks queries training never saw. Nothing here trains.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.database import ChunkRecord

SOURCES = ("ict", "headings", "generated")
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
MIN_SENTENCE_CHARS, MIN_REST_CHARS = 12, 40


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str
    chunk_id: int
    document_id: str
    source: str
    negative: str | None = None


def sentences(text: str) -> list[str]:
    """The sentences of `text` (Latin and CJK sentence ends, and line breaks), stripped, long enough to ask."""
    return [s.strip() for s in _SENTENCE.findall(text) if len(s.strip()) >= MIN_SENTENCE_CHARS]


def ict_pairs(chunks: Sequence[ChunkRecord], rng: random.Random, per_chunk: int = 1) -> list[Pair]:
    """Up to `per_chunk` pairs per chunk: a random sentence against the chunk without it (heading kept)."""
    pairs = []
    for chunk in chunks:
        found = sentences(chunk.text)
        for sentence in rng.sample(found, min(per_chunk, len(found))) if len(found) > 1 else []:
            rest = " ".join(chunk.text.replace(sentence, " ", 1).split())
            if len(rest) >= MIN_REST_CHARS:
                passage = f"{chunk.section}\n\n{rest}" if chunk.section else rest
                pairs.append(Pair(sentence, passage, chunk.id, chunk.document_id, "ict"))
    return pairs


def heading_pairs(chunks: Sequence[ChunkRecord]) -> list[Pair]:
    """One pair per chunk that has a heading trail: the heading against the chunk's own text."""
    return [
        Pair(chunk.section.strip(), chunk.text, chunk.id, chunk.document_id, "headings")
        for chunk in chunks
        if chunk.section and len(chunk.section.strip()) >= MIN_SENTENCE_CHARS and len(chunk.text) >= MIN_REST_CHARS
    ]


def generated_pairs(chunks: Sequence[ChunkRecord], write_query: Callable[[str], str | None]) -> list[Pair]:
    """One pair per chunk: the query `write_query` writes for its indexed text (None or blank: no pair)."""
    pairs = []
    for chunk in chunks:
        query = (write_query(chunk.indexed_text) or "").strip()
        if len(query) >= MIN_SENTENCE_CHARS // 2:
            pairs.append(Pair(query, chunk.indexed_text, chunk.id, chunk.document_id, "generated"))
    return pairs


Ranker = Callable[[str, int], list[int]]
"""(query, k) -> the chunk ids the current retriever ranks first, best first."""


def filter_pairs(pairs: Sequence[Pair], rank: Ranker, k: int) -> list[Pair]:
    """The pairs whose chunk the current retriever puts in its top `k` for the pair's query."""
    return [pair for pair in pairs if pair.chunk_id in rank(pair.query, k)]


def mine_negatives(
    pairs: Sequence[Pair], rank: Ranker, texts: dict[int, tuple[str, str]], depth: int = 10, skip: int = 2
) -> list[Pair]:
    """Each pair with a hard negative: among the retriever's top `depth`, past the first `skip` (likely
    unlabelled positives), the best chunk of another document. `texts`: chunk id -> (document id, text)."""
    mined = []
    for pair in pairs:
        candidates = [i for i in rank(pair.query, depth) if i in texts and texts[i][0] != pair.document_id]
        choice = candidates[skip:] or candidates
        mined.append(replace(pair, negative=texts[choice[0]][1]) if choice else pair)
    return mined


def split_held_out(pairs: Sequence[Pair], share: float, rng: random.Random) -> tuple[list[Pair], list[Pair]]:
    """(training, held out): the pairs of a random `share` of the chunks (at least one) are held out, whole,
    so that no held-out query's chunk is ever a training passage."""
    chunk_ids = sorted({pair.chunk_id for pair in pairs})
    held = set(rng.sample(chunk_ids, max(1, round(len(chunk_ids) * share)))) if len(chunk_ids) > 1 else set()
    return [p for p in pairs if p.chunk_id not in held], [p for p in pairs if p.chunk_id in held]
