"""Tuning a knowledge base's embedder (rag.tuning) on a generated corpus with a tiny random model."""

from __future__ import annotations

import json

import pytest

from rag.embedder import load_embedder
from rag.retriever import retrieve
from rag.store import KnowledgeBase
from rag.tuning import CannotTune, TuningSettings, tune_knowledge_base
from tests.tiny_embedder import build_tiny_embedder, generated_corpus

FAST = TuningSettings(sources=("ict",), max_pairs=100, held_out=0.25, epochs=6, batch_size=16, learning_rate=1e-3)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    return str(build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder")))


@pytest.fixture
def corpus_kb(tmp_path, tiny_embedder):
    kb = KnowledgeBase.create(tmp_path / "corpus", load_embedder(tiny_embedder))
    for name, text in generated_corpus().items():
        kb.ingest(name, text.encode())
    yield kb
    kb.close()


def test_tuning_lifts_held_out_recall_and_writes_a_manifest(corpus_kb, tmp_path):
    result = tune_knowledge_base(corpus_kb, tmp_path / "run", FAST)
    manifest = json.loads((tmp_path / "run" / "tuning.json").read_text())
    before, after = manifest["held_out_before"], manifest["held_out_after"]
    assert after["dense_recall@1"] > before["dense_recall@1"], (before, after)
    assert after["dense_ndcg@10"] > before["dense_ndcg@10"] + 0.03, (before, after)
    pairs = manifest["pairs"]
    assert pairs["training"] + pairs["held_out"] <= pairs["kept"] <= pairs["made_ict"] and pairs["held_out"] >= 20
    assert pairs["hard_negatives"] == pairs["training"]
    assert manifest["base_embedder"] == corpus_kb.embedder.id and len(manifest["data_sha256"]) == 64
    assert manifest["loss_curve"][-1][1] < manifest["loss_curve"][0][1]
    assert (tmp_path / "run" / "loss.png").is_file() and result.model_path == tmp_path / "run" / "model"
    assert corpus_kb.manifest.embedder != str(result.model_path)  # tuning alone does not swap the embedder


def test_the_hashing_embedder_and_a_tiny_knowledge_base_cannot_be_tuned(kb, tmp_path, tiny_embedder):
    with pytest.raises(CannotTune, match="not a sentence-transformers model"):
        tune_knowledge_base(kb, tmp_path / "run", FAST)
    small = KnowledgeBase.create(tmp_path / "small", load_embedder(tiny_embedder))
    small.ingest("one.txt", b"w41 w42 w43 w44.")
    with pytest.raises(CannotTune, match="1 chunks; tuning needs at least 4"):
        tune_knowledge_base(small, tmp_path / "run", FAST)


def test_unknown_pair_sources_are_refused():
    with pytest.raises(ValueError, match="unknown pair source 'questions'"):
        TuningSettings(sources=("ict", "questions"))


def test_after_the_swap_the_knowledge_base_answers_with_the_tuned_embedder(corpus_kb, tmp_path):
    result = tune_knowledge_base(corpus_kb, tmp_path / "run", FAST)
    corpus_kb.set_embedder(load_embedder(str(result.model_path)))
    assert corpus_kb.manifest.embedder == str(result.model_path)
    text = generated_corpus()["doc007.txt"]
    hit = retrieve(corpus_kb, text.split(".")[1], top_k=1, mode="dense")[0]
    assert hit.filename == "doc007.txt"


def test_a_beir_folder_is_scored_before_and_after_tuning_on_its_corpus(tmp_path, tiny_embedder):
    from rag.beir_tuning import evaluate_tuned

    documents = generated_corpus()
    corpus = [{"_id": name, "title": "", "text": text} for name, text in documents.items()]
    queries = [{"_id": f"q{i}", "text": documents[f"doc{i:03d}.txt"].split(".")[0]} for i in range(10)]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries))
    (tmp_path / "qrels").mkdir()
    rows = "".join(f"q{i}\tdoc{i:03d}.txt\t1\n" for i in range(10))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    report = evaluate_tuned(tmp_path, load_embedder(tiny_embedder), FAST, keep=tmp_path / "tuned", progress=False)
    assert set(report["before"]) == {"bm25", "dense", "hybrid"} and set(report["after"]) == {"dense", "hybrid"}
    assert all(0 <= row["ndcg@10"] <= 1 for table in (report["before"], report["after"]) for row in table.values())
    assert report["tuning"]["pairs"]["training"] > 0 and (tmp_path / "tuned" / "model").is_dir()
    assert set(report["seconds"]) == {"index", "tune", "reindex"}
