"""The Milvus knowledge-base backend against the folder (FAISS + bm25s + SQLite), measured in the same run.

1. Retrieval quality: BEIR SciFact's corpus (or, --corpus-docs N, the documents its test queries judge and
   N others, to bound the run) goes into a folder knowledge base once (all-MiniLM-L6-v2),
   and is copied to Milvus with ``rag.migrate`` (the same chunks and vectors; Milvus builds its own BM25).
   nDCG@10 and recall@100 per mode over SciFact's 300 test queries on both (``rag.beir``'s scoring).
2. Ingestion: the first --ingest-docs abstracts uploaded into a new knowledge base on each backend
   (cut, embed, store), against ``embedder.embed`` of the same chunk texts timed right after (raw encode).
3. Query latency: hybrid top-4 over the SciFact knowledge base of step 1 at 1 and 8 concurrent queries
   (threads), p50/p95 in ms, --queries queries per level.

Milvus is a ``milvus-lite server`` started here (or --milvus-uri): the same gRPC protocol and pymilvus
client as Milvus Standalone, but its own Python engine, so step 3's latencies are milvus-lite's.

    python -u bench/milvus_backend.py [--corpus-docs N] [--ingest-docs 500] [--queries 100] [--milvus-uri URI]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rag.beir import CHUNK_DEPTH, NDCG_AT, RECALL_AT, corpus_documents, load_beir, ndcg_at_k, recall_at_k
from rag.embedder import load_embedder
from rag.migrate import migrate
from rag.milvus_bases import MilvusKnowledgeBases
from rag.query import MODES, RetrievalOptions
from rag.retriever import retrieve
from rag.splitter import split_document
from rag.store import KnowledgeBases

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"


def start_milvus(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(folder),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("milvus-lite server did not start")


def quality(kb, dataset, judged) -> dict[str, tuple[float, float]]:
    table = {}
    for mode in MODES:
        ndcg = recall = 0.0
        for qid, query in judged:
            hits = retrieve(kb, query, RetrievalOptions(mode=mode), depth=CHUNK_DEPTH)
            ranked = list(dict.fromkeys(hit.metadata["beir_id"] for hit in hits))
            ndcg += ndcg_at_k(ranked, dataset.qrels[qid], NDCG_AT)
            recall += recall_at_k(ranked, dataset.qrels[qid], RECALL_AT)
        table[mode] = (ndcg / len(judged), recall / len(judged))
    return table


def ingestion(bases, name: str, documents, embedder) -> tuple[float, float, int]:
    """(chunks/s through the knowledge base, chunks/s of raw encode of the same texts, chunks)."""
    kb = bases.create(name)
    started = time.perf_counter()
    kb.add_documents(documents)
    stored = time.perf_counter() - started
    texts = [c.indexed_text for doc in documents for c in split_document(doc, kb.manifest.chunking,
                                                                          embedder.count_tokens)]  # fmt: skip
    started = time.perf_counter()
    embedder.embed(texts)
    raw = time.perf_counter() - started
    return len(texts) / stored, len(texts) / raw, len(texts)


def latency(kb, queries: list[str], concurrency: int) -> tuple[float, float]:
    options = RetrievalOptions(mode="hybrid")

    def one(query: str) -> float:
        started = time.perf_counter()
        retrieve(kb, query, options)
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(concurrency) as pool:
        timings = sorted(pool.map(one, queries))
    return statistics.median(timings), timings[int(0.95 * (len(timings) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpus-docs",
        type=int,
        default=None,
        help="Keep the documents the test queries judge and this many others (default: all 5,183).",
    )
    parser.add_argument("--ingest-docs", type=int, default=500)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--milvus-uri", default=None)
    args = parser.parse_args()
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2")
    dataset = load_beir(SCIFACT, "test")
    judged = [(qid, dataset.queries[qid]) for qid in dataset.qrels if qid in dataset.queries]
    documents = corpus_documents(dataset)
    if args.corpus_docs is not None:
        judged_ids = {doc for qid, _ in judged for doc in dataset.qrels[qid]}
        others = [doc for doc in documents if doc.metadata["beir_id"] not in judged_ids][: args.corpus_docs]
        documents = [doc for doc in documents if doc.metadata["beir_id"] in judged_ids] + others
    with tempfile.TemporaryDirectory() as scratch:
        server, uri = (None, args.milvus_uri) if args.milvus_uri else start_milvus(Path(scratch) / "milvus")
        try:
            factory = {embedder.id: embedder}.__getitem__
            folder = KnowledgeBases(Path(scratch) / "kbs", embedder_factory=factory, default_embedder=embedder.id)
            milvus = MilvusKnowledgeBases(uri, owner="bench", embedder_factory=factory, default_embedder=embedder.id)
            for name in ("scifact", "ingest"):
                if name in [m.name for m in milvus.list()]:
                    milvus.delete(name)
            started = time.perf_counter()
            kb = folder.create("scifact")
            kb.add_documents(documents)
            print(f"SciFact: {len(documents)} documents, {kb.stats()['chunks']} chunks, folder ingest "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
            started = time.perf_counter()
            copied = migrate(kb, milvus)
            elapsed = time.perf_counter() - started
            print(f"migrated to Milvus: {copied[0]} documents, {copied[1]} chunks in {elapsed:.0f} s")
            on = {"folder": kb, "milvus": milvus.get("scifact")}
            scores = {backend: quality(base, dataset, judged) for backend, base in on.items()}
            print(f"\nretrieval quality, SciFact test ({len(judged)} queries)")
            print("| mode | folder nDCG@10 | Milvus nDCG@10 | difference | folder recall@100 | Milvus recall@100 |")
            print("|---|---|---|---|---|---|")
            for mode in MODES:
                (fn, fr), (mn, mr) = scores["folder"][mode], scores["milvus"][mode]
                print(f"| {mode} | {fn:.4f} | {mn:.4f} | {mn - fn:+.4f} | {fr:.4f} | {mr:.4f} |")

            subset = documents[: args.ingest_docs]
            print(f"\ningestion, the first {len(subset)} SciFact abstracts (each row: its own raw encode right after)")
            print("| backend | chunks | chunks/s | raw encode chunks/s | ratio |")
            print("|---|---|---|---|---|")
            for backend, bases in (("folder", folder), ("milvus", milvus)):
                rate, raw, chunks = ingestion(bases, "ingest", subset, embedder)
                print(f"| {backend} | {chunks} | {rate:.1f} | {raw:.1f} | {rate / raw:.2f}x |")

            queries = [query for _, query in judged][: args.queries]
            print(f"\nquery latency, hybrid top-4, {len(queries)} SciFact queries per level; ms")
            print("| backend | concurrency | p50 | p95 |")
            print("|---|---|---|---|")
            for backend, base in on.items():
                latency(base, queries[:5], 1)  # warm-up
                for concurrency in (1, 8):
                    p50, p95 = latency(base, queries, concurrency)
                    print(f"| {backend} | {concurrency} | {p50:.1f} | {p95:.1f} |")
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)


if __name__ == "__main__":
    main()
