import json
import math

import pytest

from rag.beir import evaluate, format_table, ndcg_at_k, recall_at_k
from rag.embedder import HashingEmbedder


def test_ndcg_on_a_hand_made_case():
    relevance = {"a": 2, "b": 1, "z": 0}
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["a", "b", "c"], relevance, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "a", "x", "b"], relevance, 10) == pytest.approx(
        (2 / math.log2(3) + 1 / math.log2(5)) / ideal
    )
    assert ndcg_at_k(["c", "a"], relevance, 1) == 0.0
    assert ndcg_at_k(["z"], {"z": 0}, 10) == 0.0


def test_recall_on_a_hand_made_case():
    relevance = {"a": 1, "b": 1, "c": 1, "z": 0}
    assert recall_at_k(["a", "x", "b", "c"], relevance, 3) == pytest.approx(2 / 3)
    assert recall_at_k(["z", "x"], relevance, 100) == 0.0
    assert recall_at_k([], relevance, 100) == 0.0


def test_evaluate_a_tiny_beir_folder(tmp_path):
    corpus = [
        {"_id": "d1", "title": "Volcanoes", "text": "Lava and ash erupt from volcanoes in Iceland."},
        {"_id": "d2", "title": "Oceans", "text": "Whales and dolphins swim in deep oceans."},
        {"_id": "d3", "title": "Deserts", "text": "Camels cross the hot sand dunes of the Sahara."},
    ]
    queries = [{"_id": "q1", "text": "lava eruptions"}, {"_id": "q2", "text": "whales"}, {"_id": "q3", "text": "x"}]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries))
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")

    table = evaluate(tmp_path, HashingEmbedder(64), work_dir=tmp_path, progress=False)
    assert table == {mode: {"ndcg@10": 1.0, "recall@100": 1.0} for mode in ("bm25", "dense", "hybrid")}
    assert format_table(table).splitlines()[1].split() == ["bm25", "1.0000", "1.0000"]
