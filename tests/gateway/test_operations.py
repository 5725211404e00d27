"""Health, metrics, the OpenAPI schema, and adapters followed from the folder and administered by API."""

from __future__ import annotations

import asyncio
import shutil
import threading

import httpx

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine, write_adapter
from tests.gateway.conftest import fake_settings, serving
from tests.gateway.test_chat import ASK, wait_for


def test_healthz_is_503_until_the_engine_has_started(adapters_dir):
    go = threading.Event()
    engine = FakeEngine()

    async def start():
        while not go.is_set():
            await asyncio.sleep(0.01)
        return engine, AdapterRegistry(adapters_dir, "fake-base", FAKE_SHA256)

    with serving(create_app(start, settings=fake_settings(adapters_dir)), wait_ready=False) as url:
        starting = httpx.get(f"{url}/healthz")
        assert starting.status_code == 503 and starting.json() == {"status": "starting"}
        models = httpx.get(f"{url}/v1/models")
        assert models.status_code == 503 and models.json()["error"]["code"] == "engine_unavailable"
        go.set()
        wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "model": "fake-base", "adapters": 2}
        assert engine.loaded  # still serving: the app did not close it yet
    assert engine.loaded == {}  # an engine the app started is closed with the app


def test_healthz_reports_an_engine_that_failed_to_start(adapters_dir):
    async def start():
        raise RuntimeError("no GPU left")

    with serving(create_app(start, settings=fake_settings(adapters_dir)), wait_ready=False) as url:
        wait_for(lambda: httpx.get(f"{url}/healthz").json()["status"] == "failed")
        assert httpx.get(f"{url}/healthz").json()["error"] == "RuntimeError: no GPU left"
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "fake-base", "messages": ASK})
        assert reply.status_code == 503 and "no GPU left" in reply.json()["error"]["message"]


def test_metrics_count_requests_latency_and_tokens_by_model(gateway):
    client = gateway.client()
    client.chat.completions.create(model="alpha", messages=ASK)
    list(client.chat.completions.create(model="alpha", messages=ASK, stream=True))
    client.completions.create(model="fake-base", prompt="Hi")
    with gateway.http() as http:
        http.post("/v1/chat/completions", json={"model": "nope", "messages": ASK})
        response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    lines = set(response.text.splitlines())
    for line in [
        'lorag_requests_total{endpoint="chat.completions",model="alpha",outcome="ok"} 2.0',
        'lorag_requests_total{endpoint="completions",model="fake-base",outcome="ok"} 1.0',
        'lorag_prompt_tokens_total{model="alpha"} 6.0',
        'lorag_completion_tokens_total{model="alpha"} 10.0',
        'lorag_completion_tokens_total{model="fake-base"} 3.0',
        'lorag_request_duration_seconds_count{endpoint="chat.completions",model="alpha"} 2.0',
        'lorag_time_to_first_token_seconds_count{endpoint="chat.completions",model="alpha"} 2.0',
        "lorag_requests_in_flight 0.0",
    ]:
        assert line in lines, line
    assert 'model="nope"' not in response.text  # unknown names never become labels


def test_metrics_name_no_knowledge_base(gateway):
    """/metrics is public: a label model="...@victim" told anyone every knowledge base in use."""
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "victim"})
        http.post("/v1/knowledge_bases/victim/documents", files={"files": ("a.txt", b"The bridge is teal.")})
        assert http.post("/v1/chat/completions", json={"model": "alpha@victim", "messages": ASK}).status_code == 200
        text = http.get("/metrics").text
    assert (
        "victim" not in text
        and 'lorag_requests_total{endpoint="chat.completions",model="alpha@kb",outcome="ok"} 1.0' in text
    )


def test_the_openapi_schema_documents_every_route(gateway):
    schema = httpx.get(f"{gateway.url}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/models/{model}", "/v1/adapters"} <= set(
        schema["paths"]
    )
    assert {"/healthz", "/metrics", "/v1/adapters/{name}"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert list(request)[:4] == ["messages", "model", "audio", "frequency_penalty"]  # the reference's order
    assert "429" in schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"405", "408", "413"} <= set(schema["paths"]["/v1/chat/completions"]["post"]["responses"])
    assert "409" in schema["paths"]["/v1/knowledge_bases"]["post"]["responses"]
    assert "409" in schema["paths"]["/v1/compare/{run_id}/cancel"]["post"]["responses"]


def test_the_gateway_follows_the_adapters_folder(make_gateway):
    served = make_gateway(adapter_refresh_s=0.05)
    client = served.client()
    write_adapter(served.adapters_dir / "gamma")
    wait_for(lambda: "gamma" in {m.id for m in client.models.list()})
    assert client.chat.completions.create(model="gamma", messages=ASK).choices[0].message.content.startswith("gamma")
    shutil.rmtree(served.adapters_dir / "alpha")
    write_adapter(served.adapters_dir / "big", rank=128)
    wait_for(lambda: "alpha" not in {m.id for m in client.models.list()})
    with served.http() as http:
        listing = http.get("/v1/adapters").json()
    assert [a["name"] for a in listing["data"]] == ["beta", "gamma"]
    assert listing["refused"] == [{"name": "big", "reason": "LoRA rank 128 is over this engine's maximum of 64"}]
    gamma = listing["data"][1]
    assert gamma["source"] == "folder" and gamma["rank"] == 4 and gamma["target_modules"] == ["q_proj"]
    assert gamma["manifest"]["base_model"] == "fake-base" and "history" not in gamma["manifest"]


def test_adapter_administration_errors(gateway, tmp_path):
    elsewhere = write_adapter(tmp_path / "elsewhere" / "delta")
    with gateway.http() as http:
        created = http.post("/v1/adapters", json={"name": "delta", "path": str(elsewhere)})
        assert created.status_code == 201 and created.json()["source"] == "registered"
        again = http.post("/v1/adapters", json={"name": "delta", "path": str(elsewhere)})
        assert again.status_code == 409 and again.json()["error"]["code"] == "adapter_exists"
        renamed = http.post("/v1/adapters", json={"name": "other", "path": str(elsewhere)})
        assert renamed.status_code == 400 and renamed.json()["error"]["param"] == "name"
        missing = http.post("/v1/adapters", json={"name": "ghost", "path": str(tmp_path / "ghost")})
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "adapter_refused"
        assert "no lorag.json" in missing.json()["error"]["message"]
        folder = http.delete("/v1/adapters/alpha")
        assert folder.status_code == 409 and "remove its folder" in folder.json()["error"]["message"]
        assert http.delete("/v1/adapters/ghost").status_code == 404
        assert http.delete("/v1/adapters/delta").status_code == 204
    assert gateway.engine.adapters() == ["alpha", "beta"]
