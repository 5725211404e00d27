"""The ``reader_adapter`` fixture on the embedded Gemma 3 270M: it answers unseen facts from the sources in its prompt.

The adapter was trained on RAFT chats about invented people (tests/reader.py); here other invented
people, never seen in training, go into a new knowledge base, and every question about them is
asked with the sources a ``<model>@<kb>`` chat would put into the prompt (the same retriever and
``rag.augment.augment``). The adapter must answer with the fact and cite its source.
"""

import asyncio
import json

import pytest

from rag.augment import augment
from rag.loaders import load_document
from rag.retriever import retrieve
from rag.store import KnowledgeBases
from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams
from serve.local_engine import LocalEngine
from tests.reader import facts

pytestmark = pytest.mark.slow


def test_reader_adapter_answers_new_facts_from_the_sources_and_cites_them(reader_adapter, embedded_model_dir, tmp_path):
    known = {fact.name for fact in facts(30, seed=0)}
    people = [fact for fact in facts(4, seed=99) if fact.name not in known]
    kb = KnowledgeBases(tmp_path / "kbs", default_embedder="hashing-256").create("new")
    kb.add_documents([doc for p in people for doc in load_document(f"{p.name}.txt", p.document.encode())])
    asks = []
    for person in people:
        for question, answer in person.questions():
            messages, _ = augment([{"role": "user", "content": question}], retrieve(kb, question, top_k=2))
            asks.append((question, answer, [Message(m["role"], m["content"]) for m in messages]))
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    scan = AdapterRegistry(reader_adapter.parent, base["id"], base["sha256"]).scan()
    engine = LocalEngine(embedded_model_dir, base["id"])
    params = SamplingParams(max_tokens=16, temperature=0)

    async def ask_all():
        await engine.load_adapter(scan.adapters["reader"])
        results = await asyncio.gather(*(engine.generate(messages, params, "reader") for _, _, messages in asks))
        await engine.close()
        return results

    answers = asyncio.run(ask_all())
    right = [answer in result.text for (_, answer, _), result in zip(asks, answers, strict=True)]
    report = [f"{q!r} -> {r.text!r} (expected {a})" for (q, a, _), r in zip(asks, answers, strict=True)]
    assert sum(right) >= 0.8 * len(asks), "\n".join(report)
    assert sum("[" in r.text for r in answers) >= 0.8 * len(asks), "\n".join(report)  # it cites its sources
