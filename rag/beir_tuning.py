"""A BEIR dataset measured before and after tuning the embedder on its corpus alone.

The corpus goes into a knowledge base in a temporary folder, as in `rag.beir`; the test queries
are scored (bm25, dense, hybrid); the embedder is tuned with `rag.tuning` on pairs made from the
corpus only (settings are judged on pairs held out from the corpus, never on the queries or
qrels, which tuning does not read); the knowledge base is re-indexed with the tuned embedder
through `KnowledgeBase.set_embedder`, and the queries are scored again.

    python -m rag.beir_tuning /path/to/scifact [--max-pairs 2000] [--epochs 1] [--keep DIR]

This module knows nothing of the gateway.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.beir import corpus_documents, format_table, load_beir, score
from rag.embedder import DEFAULT_EMBEDDER, Embedder, SentenceTransformerEmbedder, load_embedder
from rag.store import KnowledgeBase
from rag.tuning import TuningSettings, tune_knowledge_base


def evaluate_tuned(
    folder: Path,
    embedder: Embedder,
    settings: TuningSettings,
    *,
    split: str = "test",
    keep: Path | None = None,
    work_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """{"before": table, "after": table, "tuning": manifest, "seconds": {...}}; the tuned model kept in `keep`."""
    dataset = load_beir(folder, split)
    seconds = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        started = time.monotonic()
        kb = KnowledgeBase.create(Path(scratch) / "beir", embedder)
        kb.add_documents(corpus_documents(dataset), progress=progress)
        seconds["index"] = round(time.monotonic() - started, 1)
        before = score(kb, dataset, ("bm25", "dense", "hybrid"), progress=progress)
        started = time.monotonic()
        out = keep or Path(scratch) / "tuned"
        result = tune_knowledge_base(kb, out, settings, progress=progress)
        seconds["tune"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        kb.set_embedder(SentenceTransformerEmbedder(str(result.model_path)), progress=progress)
        seconds["reindex"] = round(time.monotonic() - started, 1)
        after = score(kb, dataset, ("dense", "hybrid"), progress=progress)
        kb.close()
    return {"before": before, "after": after, "tuning": result.manifest, "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rag.beir_tuning", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a BEIR dataset folder")
    parser.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="sentence-transformers id or path")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sources", default="ict,headings", help="pair sources, comma-separated")
    parser.add_argument("--max-pairs", type=int, default=TuningSettings.max_pairs)
    parser.add_argument("--epochs", type=float, default=TuningSettings.epochs)
    parser.add_argument("--batch-size", type=int, default=TuningSettings.batch_size)
    parser.add_argument("--learning-rate", type=float, default=TuningSettings.learning_rate)
    parser.add_argument("--eval-pool", type=int, default=TuningSettings.eval_pool, help="chunks per held-out eval")
    parser.add_argument("--keep", type=Path, help="keep the tuned model and its manifest in this folder")
    args = parser.parse_args(argv)
    settings = TuningSettings(
        sources=tuple(args.sources.split(",")), max_pairs=args.max_pairs, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, eval_pool=args.eval_pool,
    )  # fmt: skip
    report = evaluate_tuned(args.folder, load_embedder(args.embedder), settings, split=args.split, keep=args.keep)
    print(f"before\n{format_table(report['before'])}\nafter tuning\n{format_table(report['after'])}")
    print(json.dumps({"seconds": report["seconds"], **{k: report["tuning"][k] for k in ("pairs", "held_out_before",
                      "held_out_after")}}))  # fmt: skip


if __name__ == "__main__":
    main()
