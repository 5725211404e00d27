"""Retrieval end to end: the official `openai` client -> lorag -> LocalEngine on the embedded Gemma 3 270M,
with a knowledge base on the real all-MiniLM-L6-v2 embedder, filled from a real .docx and .pdf.

A fact that exists only in the uploaded document reaches the model through ``<base>@<kb>`` and
is cited; once the document is deleted it is neither retrieved nor cited. The embedded model is
a base model that quotes or continues its sources rather than answering (docs/rag.md), so the
test checks what the pipeline guarantees: the source is in the prompt (its tokens are counted)
and the answer changes with it, not the wording of the answer.
"""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from gateway.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from tests.documents import docx_bytes, pdf_bytes
from tests.gateway.conftest import fake_settings, serving

pytestmark = pytest.mark.slow
FACT = "The Zorblat bridge in Quenville was painted teal in 1987 by the harbour guild."
QUESTION = [{"role": "user", "content": "What colour is the Zorblat bridge?"}]
ONE_SOURCE = {"rag": {"top_k": 1}}
ASK = {"temperature": 0, "max_tokens": 24}


@pytest.fixture(scope="module")
def gateway(embedded_model_dir, tmp_path_factory):
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    adapters = tmp_path_factory.mktemp("rag") / "adapters"
    adapters.mkdir()
    engine = LocalEngine(embedded_model_dir, base["id"])
    registry = AdapterRegistry(adapters, base["id"], base["sha256"], engine.info.limits)
    settings = fake_settings(adapters, embedder="sentence-transformers/all-MiniLM-L6-v2")
    with serving(create_app(engine, registry, settings)) as url:
        yield url


def test_a_fact_only_in_an_uploaded_document_is_answered_and_cited_until_the_document_is_deleted(gateway):
    client = OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=300)
    with httpx.Client(base_url=gateway, timeout=300) as http:
        assert http.post("/v1/knowledge_bases", json={"name": "towns"}).status_code == 201
        files = [
            ("files", ("bridges.docx", docx_bytes([("h1", "Bridges of Quenville"), ("p", FACT)]))),
            ("files", ("bakery.pdf", pdf_bytes(["The Quenville bakery opens at six and sells rye bread."]))),
        ]
        uploaded = http.post("/v1/knowledge_bases/towns/documents", files=files)
        assert uploaded.status_code == 201, uploaded.text
        bridges = uploaded.json()["data"][0]["id"]

        untold = client.chat.completions.create(model="gemma-3-270m", messages=QUESTION, **ASK)
        assert "teal" not in untold.choices[0].message.content.lower()
        assert "citations" not in untold.model_extra

        told = client.chat.completions.create(
            model="gemma-3-270m@towns", messages=QUESTION, extra_body=ONE_SOURCE, **ASK
        )
        assert told.choices[0].message.content != untold.choices[0].message.content
        assert told.usage.prompt_tokens >= untold.usage.prompt_tokens + len(FACT.split())
        citations = told.model_extra["citations"]
        assert citations[0]["filename"] == "bridges.docx" and "teal" in citations[0]["snippet"]
        assert citations[0]["section"] == "Bridges of Quenville"

        assert http.delete(f"/v1/knowledge_bases/towns/documents/{bridges}").json()["deleted"] is True
        hits = http.post("/v1/knowledge_bases/towns/search", json={"query": "Zorblat bridge colour"}).json()["data"]
        assert [hit["filename"] for hit in hits] == ["bakery.pdf"]
        after = client.chat.completions.create(
            model="gemma-3-270m@towns", messages=QUESTION, extra_body=ONE_SOURCE, **ASK
        )
        assert "teal" not in after.choices[0].message.content.lower()
        assert [c["filename"] for c in after.model_extra["citations"]] == ["bakery.pdf"]
