"""New facts, only in uploaded documents, answered and cited through ``<adapter>@<kb>`` via the openai client.

The ``reader_adapter`` was trained on RAFT chats about invented people (tests/reader.py); here
other invented people, never seen in training, are uploaded to a new knowledge base over HTTP,
and every question about them goes to ``reader@people`` on the gateway (LocalEngine, the embedded
default model). The adapter must answer with the fact and cite its source by number, and the
response's ``citations`` must name the document the fact came from. Once that document is
deleted, it is no longer among the sources. (Whether the answer then changes is not asserted:
with ten cities and eight colours, a distractor person often shares the value.)
"""

import json

import httpx
import pytest
from openai import OpenAI

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from tests.gateway.conftest import fake_settings, serving
from tests.reader import facts

pytestmark = pytest.mark.slow
TOP_K = {"rag": {"top_k": 2}}  # as the adapter was trained


def test_new_facts_are_answered_from_uploaded_documents_and_cited(reader_adapter, embedded_model_dir):
    known = {fact.name for fact in facts(30, seed=0)}
    people = [fact for fact in facts(4, seed=99) if fact.name not in known]
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    engine = LocalEngine(embedded_model_dir, base["id"])
    registry = AdapterRegistry(reader_adapter.parent, base["id"], base["sha256"], engine.info.limits)
    with serving(create_app(engine, registry, fake_settings(reader_adapter.parent))) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
        with httpx.Client(base_url=url, timeout=300) as http:
            http.post("/v1/knowledge_bases", json={"name": "people"}).raise_for_status()
            files = [("files", (f"{p.name}.txt", p.document.encode())) for p in people]
            documents = http.post("/v1/knowledge_bases/people/documents", files=files).json()["data"]

            def ask(question: str):
                reply = client.chat.completions.create(
                    model="reader@people", messages=[{"role": "user", "content": question}],
                    temperature=0, max_tokens=16, extra_body=TOP_K,
                )  # fmt: skip
                return reply.choices[0].message.content, reply.model_extra["citations"]

            asked = [(p, q, a, *ask(q)) for p in people for q, a in p.questions()]
            report = "\n".join(f"{q!r} -> {text!r} (expected {a})" for _, q, a, text, _ in asked)
            right = [a in text for _, _, a, text, _ in asked]
            assert sum(right) >= 0.8 * len(asked), report
            assert sum("[" in text for *_, text, _ in asked) >= 0.8 * len(asked), report  # it cites by number
            assert all(any(c["filename"] == f"{p.name}.txt" for c in cited) for p, *_, cited in asked)

            first = people[0]
            http.delete(f"/v1/knowledge_bases/people/documents/{documents[0]['id']}").raise_for_status()
            for question, _ in first.questions():
                _, cited = ask(question)
                assert cited and all(c["filename"] != f"{first.name}.txt" for c in cited)
