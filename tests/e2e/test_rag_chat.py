"""Retrieval end to end: the official `openai` client -> lorag -> LocalEngine on the embedded default model,
with a knowledge base on the real all-MiniLM-L6-v2 embedder, filled from a real .pdf and .docx.

A fact that exists only in an uploaded one-page PDF is answered by ``<base>@<kb>`` and cited
(the PDF and its page in ``citations``); the base model alone does not know
it; once the document is deleted it is neither retrieved nor cited.
"""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.embedded import DEFAULT_MODEL as BASE
from serve.local_engine import LocalEngine
from tests.documents import docx_bytes, pdf_bytes
from tests.gateway.conftest import fake_settings, serving

pytestmark = pytest.mark.slow
FACT = "The Zorblat bridge in Quenville was painted teal in 1987 by the harbour guild."
BAKERY = "The Quenville bakery opens at six and sells rye bread."
QUESTION = [{"role": "user", "content": "Who painted the Zorblat bridge?"}]
ANSWER = "harbour guild"  # the 135M model reads "teal" as "blue": an extractive fact is the fair test
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
            ("files", ("quenville.pdf", pdf_bytes([FACT]))),
            ("files", ("bakery.docx", docx_bytes([("h1", "Bakeries"), ("p", BAKERY)]))),
        ]
        uploaded = http.post("/v1/knowledge_bases/towns/documents", files=files)
        assert uploaded.status_code == 201, uploaded.text
        pdf = uploaded.json()["data"][0]["id"]

        untold = client.chat.completions.create(model=BASE, messages=QUESTION, **ASK)
        assert ANSWER not in untold.choices[0].message.content.lower()
        assert "citations" not in untold.model_extra

        told = client.chat.completions.create(model=f"{BASE}@towns", messages=QUESTION, extra_body=ONE_SOURCE, **ASK)
        answer = told.choices[0].message.content
        assert ANSWER in answer.lower(), answer
        assert told.usage.prompt_tokens >= untold.usage.prompt_tokens + len(FACT.split())
        citations = told.model_extra["citations"]
        assert citations[0]["filename"] == "quenville.pdf" and citations[0]["page"] == 1
        assert "teal" in citations[0]["snippet"]

        assert http.delete(f"/v1/knowledge_bases/towns/documents/{pdf}").json()["deleted"] is True
        hits = http.post("/v1/knowledge_bases/towns/search", json={"query": "Zorblat bridge painter"}).json()["data"]
        assert [hit["filename"] for hit in hits] == ["bakery.docx"]
        after = client.chat.completions.create(model=f"{BASE}@towns", messages=QUESTION, extra_body=ONE_SOURCE, **ASK)
        assert ANSWER not in after.choices[0].message.content.lower()
        assert [c["filename"] for c in after.model_extra["citations"]] == ["bakery.docx"]
        assert after.model_extra["citations"][0]["section"] == "Bakeries"


def test_a_knowledge_base_arm_answers_in_a_json_schema_with_its_citations(gateway):
    client = OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=300)
    with httpx.Client(base_url=gateway, timeout=300) as http:
        assert http.post("/v1/knowledge_bases", json={"name": "bridges"}).status_code == 201
        files = [("files", ("quenville.pdf", pdf_bytes([FACT])))]
        assert http.post("/v1/knowledge_bases/bridges/documents", files=files).status_code == 201
    schema = {
        "type": "object",
        "properties": {"painter": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["painter", "year"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "painting", "schema": schema}}
    reply = client.chat.completions.create(
        model=f"{BASE}@bridges", messages=QUESTION, response_format=response_format, temperature=0, max_tokens=120
    )
    assert reply.choices[0].finish_reason == "stop", reply.choices[0].message.content
    answer = json.loads(reply.choices[0].message.content)
    assert ANSWER in answer["painter"].lower() and answer["year"] == 1987, answer
    assert reply.model_extra["citations"][0]["filename"] == "quenville.pdf"
