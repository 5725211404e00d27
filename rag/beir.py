"""Measure retrieval on a BEIR-format folder: nDCG@10 and recall@100 for bm25, dense and hybrid.

The folder holds `corpus.jsonl` ({_id, title, text}), `queries.jsonl` ({_id, text}) and
`qrels/<split>.tsv` (query-id, corpus-id, score, with a header line). The corpus goes through the
same path as uploads (split, embedded, indexed in a knowledge base in a temporary folder), with
each title as its document's heading context. A document ranks where its best chunk ranks.
Metrics follow trec_eval (linear gain), averaged over the queries that have judgements.

    python -m rag.beir /path/to/scifact [--embedder ID] [--split test]

This module knows nothing of the gateway; it returns a table as a dict.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from rag.embedder import DEFAULT_EMBEDDER, Embedder, load_embedder
from rag.loaders import Document, Segment
from rag.query import MODES, Mode, RetrievalOptions
from rag.retriever import retrieve
from rag.store import KnowledgeBase

NDCG_AT, RECALL_AT = 10, 100
CHUNK_DEPTH = 3 * RECALL_AT
"""Chunks retrieved per query, so that at least RECALL_AT distinct documents are ranked."""


@dataclass(frozen=True)
class BeirDataset:
    corpus: dict[str, tuple[str, str]]
    """Document id -> (title, text)."""
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    """Query id -> document id -> relevance."""


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    folder = Path(folder)
    corpus = {
        record["_id"]: (record.get("title") or "", record.get("text") or "")
        for record in _read_jsonl(folder / "corpus.jsonl")
    }
    queries = {record["_id"]: record["text"] for record in _read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return BeirDataset(corpus, queries, qrels)


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    dcg = sum(relevance.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((grade for grade in relevance.values() if grade > 0), reverse=True)[:k]
    best = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / best if best else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, grade in relevance.items() if grade > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def corpus_documents(dataset: BeirDataset) -> list[Document]:
    """One Document per corpus record, its title as heading context, its id as metadata `beir_id`."""
    documents = []
    for doc_id, (title, text) in dataset.corpus.items():
        body = text.strip() or title.strip()
        if not body:
            continue
        raw = json.dumps({"_id": doc_id, "title": title, "text": text}).encode("utf-8")
        section = title.strip() if text.strip() and title.strip() else None
        segments = (Segment(0, len(body), section=section),)
        documents.append(
            Document("corpus.jsonl", body, segments, hashlib.sha256(raw).hexdigest(), len(raw), {"beir_id": doc_id})
        )
    return documents


def evaluate(
    folder: Path,
    embedder: Embedder,
    *,
    split: str = "test",
    modes: Sequence[Mode] = ("bm25", "dense", "hybrid"),
    work_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """{mode: {"ndcg@10": ..., "recall@100": ...}} over the judged queries of `split`."""
    dataset = load_beir(folder, split)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        kb = KnowledgeBase.create(Path(scratch) / "beir", embedder)
        kb.add_documents(corpus_documents(dataset), progress=progress)
        return score(kb, dataset, modes, progress=progress)


def score(
    kb: KnowledgeBase, dataset: BeirDataset, modes: Sequence[Mode], *, progress: bool = True
) -> dict[str, dict[str, float]]:
    """{mode: {"ndcg@10": ..., "recall@100": ...}} of `kb` (holding the corpus) over the judged queries."""
    judged = [(qid, dataset.queries[qid]) for qid in dataset.qrels if qid in dataset.queries]
    table = {}
    for mode in modes:
        ndcg = recall = 0.0
        for qid, query in tqdm(judged, desc=mode, unit="query", disable=not progress):
            hits = retrieve(kb, query, RetrievalOptions(mode=mode), depth=CHUNK_DEPTH)
            ranked = list(dict.fromkeys(hit.metadata["beir_id"] for hit in hits))
            ndcg += ndcg_at_k(ranked, dataset.qrels[qid], NDCG_AT)
            recall += recall_at_k(ranked, dataset.qrels[qid], RECALL_AT)
        table[mode] = {f"ndcg@{NDCG_AT}": ndcg / len(judged), f"recall@{RECALL_AT}": recall / len(judged)}
    return table


def format_table(table: Mapping[str, Mapping[str, float]]) -> str:
    metrics = list(next(iter(table.values())))
    lines = ["mode    " + "".join(f"{metric:>12}" for metric in metrics)]
    lines += [f"{mode:<8}" + "".join(f"{row[m]:>12.4f}" for m in metrics) for mode, row in table.items()]
    return "\n".join(lines)


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rag.beir", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a BEIR dataset folder")
    parser.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="sentence-transformers id or path")
    parser.add_argument("--split", default="test")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["bm25", "dense", "hybrid"])
    args = parser.parse_args(argv)
    table = evaluate(args.folder, load_embedder(args.embedder), split=args.split, modes=args.modes)
    print(format_table(table))


if __name__ == "__main__":
    main()
