"""BM25 in any language: Chinese segmented by jieba, other spaceless scripts in bigrams, old indexes rebuilt."""

from __future__ import annotations

import json

import numpy as np

from rag.folder import BM25_INDEX
from rag.retriever import retrieve
from rag.store import KnowledgeBase
from rag.tokenize import Tokenizer

RLHF = "备注：RLHF的实现非常复杂，需要大量的工程优化。所以要是不具备大模型底层的研发能力，不建议做RLHF。"
LORA = "LoRA是在基础模型之外添加一个小的模型，这个小模型的训练成本和算力需求都非常低。"
DPO = "DPO不需要一个奖励模型，所以使用成本要比强化学习低很多。"


def test_chinese_is_segmented_into_words_and_english_words_are_stemmed_as_before():
    tokens = Tokenizer()(["为什么不建议做RLHF？", "The running dogs"])
    assert tokens[0] == ["rlhf", "为什么", "建议", "做"]
    assert tokens[1] == ["run", "dog"]


def test_scripts_without_spaces_and_without_a_segmenter_are_cut_into_bigrams():
    assert Tokenizer()(["日本語です", "ภาษาไทย"]) == [
        ["日本", "本語", "語で", "です"],
        ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"],
    ]


def test_a_chinese_question_finds_its_passage_with_bm25(kb):
    for name, text in (("rlhf.txt", RLHF), ("lora.txt", LORA), ("dpo.txt", DPO)):
        kb.ingest(name, text.encode("utf-8"))
    assert retrieve(kb, "为什么不建议做RLHF？", top_k=1, mode="bm25")[0].filename == "rlhf.txt"
    assert retrieve(kb, "DPO需要奖励模型吗", top_k=1, mode="bm25")[0].filename == "dpo.txt"
    assert retrieve(kb, "小模型的算力需求", top_k=1, mode="bm25")[0].filename == "lora.txt"


def test_a_bm25_index_saved_by_an_older_tokenizer_is_rebuilt_when_the_knowledge_base_opens(tmp_path, embedder):
    kb = KnowledgeBase.create(tmp_path / "kb", embedder)
    kb.ingest("rlhf.txt", RLHF.encode("utf-8"))
    kb.ingest("lora.txt", LORA.encode("utf-8"))
    kb.close()
    path = tmp_path / "kb" / BM25_INDEX
    with np.load(path) as stored:  # what lorag wrote before: no tokenizer named, one token per sentence
        arrays = dict(stored)
    arrays["settings"] = np.frombuffer(json.dumps({"language": "english", "k1": 0.9, "b": 0.4}).encode(), np.uint8)
    arrays["vocabulary"] = np.frombuffer("备注".encode(), np.uint8)
    arrays["tokens"] = np.zeros(int(arrays["lengths"].sum()), dtype=np.int32)
    np.savez(path, **arrays)
    reopened = KnowledgeBase(tmp_path / "kb", embedder)
    assert retrieve(reopened, "为什么不建议做RLHF？", top_k=1, mode="bm25")[0].filename == "rlhf.txt"
    reopened.close()
    with np.load(path) as stored:  # and saved so
        assert json.loads(stored["settings"].tobytes())["tokenizer"] == "script-runs-1"
