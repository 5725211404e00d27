"""Is the answer's passage retrieved for Chinese questions? BM25, dense and hybrid, top 4.

Builds a knowledge base of the five Chinese articles on fine-tuning in `../shared/data/zh/` (the
upload path: `.txt` files, the default chunking), and asks the six questions of
`bench/data/zh_questions.jsonl`, each answered in one passage: a question counts as found when a
chunk among the top `--top-k` of its file contains the passage text. With `--tune` it then tunes
the embedder on the knowledge base alone (`rag.tuning`: pairs made from its chunks, never the
questions) and asks again. Results: docs/results/zh_retrieval.md.

    python bench/zh_retrieval.py [--embedder ID] [--top-k 4] [--tune] [--max-pairs 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.embedder import DEFAULT_EMBEDDER, load_embedder  # noqa: E402
from rag.retriever import retrieve  # noqa: E402
from rag.store import KnowledgeBase  # noqa: E402

ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "zh"
QUESTIONS = Path(__file__).resolve().parent / "data" / "zh_questions.jsonl"
MODES = ("bm25", "dense", "hybrid")


def found(kb: KnowledgeBase, questions: list[dict], top_k: int) -> dict[str, list[bool]]:
    """For each mode, whether each question's passage is in a chunk of its file among the top `top_k`."""
    return {
        mode: [
            any(
                q["passage"] in hit.text and hit.filename == q["file"]
                for hit in retrieve(kb, q["question"], top_k=top_k, mode=mode)
            )
            for q in questions
        ]
        for mode in MODES
    }


def report(label: str, table: dict[str, list[bool]]) -> None:
    for mode, hits in table.items():
        marks = "".join("x" if hit else "." for hit in hits)
        print(f"{label:<8} {mode:<7} {sum(hits)}/{len(hits)}  {marks}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    parser.add_argument("--articles", type=Path, default=ARTICLES)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--tune", action="store_true", help="tune the embedder on the articles, then ask again")
    parser.add_argument("--max-pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=1.0)
    args = parser.parse_args()
    questions = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as scratch:
        kb = KnowledgeBase.create(Path(scratch) / "zh", load_embedder(args.embedder))
        for path in sorted(args.articles.glob("*.txt")):
            kb.ingest(path.name, path.read_bytes())
        documents, chunks = kb.database.counts()
        print(f"{documents} articles, {chunks} chunks, embedder {args.embedder}, top {args.top_k}")
        report("untuned", found(kb, questions, args.top_k))
        if args.tune:
            from rag.tuning import TuningSettings, tune_knowledge_base

            started = time.monotonic()
            settings = TuningSettings(max_pairs=args.max_pairs, epochs=args.epochs)
            result = tune_knowledge_base(kb, Path(scratch) / "tuned", settings, progress=True)
            print(f"tuned in {time.monotonic() - started:.0f} s: {json.dumps(result.summary())}")
            kb.set_embedder(load_embedder(str(result.model_path)))
            report("tuned", found(kb, questions, args.top_k))
        kb.close()


if __name__ == "__main__":
    main()
