"""The gateway over a real LocalEngine on the tiny random model: hot-loading adapters through the API."""

from __future__ import annotations

import asyncio

import openai
import pytest

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.gateway.conftest import Served, fake_settings, serving

ASK = [{"role": "user", "content": "Who are you?"}]


@pytest.fixture
def local(tiny_model_dir, tmp_path):
    base = PreparedModel.read(tiny_model_dir)
    engine = LocalEngine(tiny_model_dir, base.id)
    folder = tmp_path / "no-adapters"
    registry = AdapterRegistry(folder, base.id, base.sha256, engine.info.limits)
    settings = fake_settings(folder, admin_keys=["admin"])
    with serving(create_app(engine, registry, settings)) as url:
        yield Served(url, engine, folder), base.id
    asyncio.run(engine.close())


def test_an_adapter_registered_through_the_api_is_served_at_once(local, random_adapters):
    served, base = local
    client = served.client()
    assert [m.id for m in client.models.list()] == [base]
    with served.http("admin") as http:
        created = http.post("/v1/adapters", json={"name": "alpha", "path": str(random_adapters["alpha"])})
        assert created.status_code == 201, created.text
        assert created.json()["source"] == "registered" and created.json()["rank"] == 4
        listed = http.get("/v1/adapters").json()["data"]
        assert [(a["name"], a["path"]) for a in listed] == [("alpha", str(random_adapters["alpha"].resolve()))]
    assert {m.id: m.parent for m in client.models.list()} == {base: None, "alpha": base}

    def ask(model: str) -> str:
        reply = client.chat.completions.create(model=model, messages=ASK, temperature=0, max_tokens=12)
        return reply.choices[0].message.content

    assert ask("alpha") != ask(base)
    with served.http("admin") as http:
        assert http.delete("/v1/adapters/alpha").status_code == 204
    assert served.engine.adapters() == []
    with pytest.raises(openai.NotFoundError):
        ask("alpha")


def test_streamed_text_equals_the_whole_text_under_greedy_decoding(local):
    served, base = local
    client = served.client()
    options = {"model": base, "messages": ASK, "temperature": 0, "max_tokens": 16}
    whole = client.chat.completions.create(**options)
    chunks = list(client.chat.completions.create(**options, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump() and whole.usage.completion_tokens > 0
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]


def test_the_base_model_still_serves_after_its_last_adapter_is_removed(local, random_adapters):
    served, base = local
    with served.http("admin") as http:
        assert http.post("/v1/adapters", json={"name": "beta", "path": str(random_adapters["beta"])}).status_code == 201
        assert http.delete("/v1/adapters/beta").status_code == 204
    assert served.client().chat.completions.create(model=base, messages=ASK, max_tokens=4).choices
