"""The console's Train page starting a retriever job: tune a knowledge base's embedder, no file needed.

The gateway serves a FakeEngine; knowledge base 'corpus' holds the generated documents on the tiny
random embedder (tests/tiny_embedder.py), which the job tunes for a few seconds on the CPU.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from serve.adapters import AdapterRegistry
from tests.console.conftest import needs_chromium
from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine
from tests.gateway.conftest import fake_settings, serving
from tests.tiny_embedder import build_tiny_embedder, generated_corpus

pytestmark = [needs_chromium, pytest.mark.slow]


@pytest.fixture
def gateway(tmp_path):
    """``(url, tiny embedder)``: a gateway with knowledge base 'corpus' on the tiny embedder."""
    from gateway.api.app import create_app

    embedder = str(build_tiny_embedder(tmp_path / "tiny-embedder"))
    engine = FakeEngine()
    adapters = tmp_path / "adapters"
    registry = AdapterRegistry(adapters, engine.info.base_model, FAKE_SHA256, engine.info.limits)
    with serving(create_app(engine, registry, fake_settings(adapters, embedder=embedder))) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.post("/v1/knowledge_bases", json={"name": "corpus"}).status_code == 201
            files = [("files", (name, text.encode())) for name, text in generated_corpus().items()]
            assert http.post("/v1/knowledge_bases/corpus/documents", files=files).status_code == 201
        yield url, embedder


def test_a_retriever_job_started_from_the_train_page_tunes_the_knowledge_base(gateway, open_console):
    url, embedder = gateway
    page = open_console(url, hash="#train")
    page.locator("#tr-method").select_option("retriever")
    expect(page.locator("#tr-training")).to_be_hidden()  # no training file
    expect(page.locator("#tr-lr")).to_be_hidden()
    expect(page.locator("#tr-kb")).to_have_value("corpus")
    expect(page.locator("#tr-method-hint")).to_contain_text("Tunes the knowledge base's embedder")
    page.locator("#tr-epochs").fill("2")
    page.locator("#tr-batch").fill("16")
    page.get_by_role("button", name="Start job").click()
    expect(page.locator("#tr-status")).to_have_text(re.compile(r"^Started ftjob-"))
    job = page.locator("#tr-job")
    expect(page.locator("#tr-state")).to_have_text("succeeded", timeout=180_000)
    expect(job.locator("dt:text-is('Knowledge base') + dd")).to_have_text("corpus")
    expect(job.locator("#tr-events")).to_contain_text("Held-out pairs")
    expect(job.locator("#tr-events")).to_contain_text("Knowledge base 'corpus' now answers with the tuned embedder")
    expect(job.get_by_role("img", name=re.compile(r"^Loss by step: train loss from"))).to_be_visible()
    expect(page.locator("#tr-jobs li")).to_contain_text("succeeded · retriever")
    assert httpx.get(f"{url}/v1/knowledge_bases/corpus").json()["embedder"] != embedder
