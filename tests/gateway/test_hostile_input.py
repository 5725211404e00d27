"""Hostile input against the gateway: each reproduces a defect found in an audit, and the fix.

Over the fake engine unless the defect lives in a real engine (the context check: the tiny
random model on a LocalEngine, whose context is 512 tokens).
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
import zipfile

import httpx
import pytest

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.documents import docx_bytes
from tests.gateway.conftest import Served, fake_settings, serving

ASK = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def local(tiny_model_dir, tmp_path_factory):
    """The gateway over a LocalEngine on the tiny model (context 512 tokens), with a knowledge base 'docs'."""
    base = PreparedModel.read(tiny_model_dir)
    engine = LocalEngine(tiny_model_dir, base.id)
    folder = tmp_path_factory.mktemp("hostile") / "adapters"
    registry = AdapterRegistry(folder, base.id, base.sha256, engine.info.limits)
    with serving(create_app(engine, registry, fake_settings(folder))) as url:
        served = Served(url, engine, folder)
        with served.http() as http:
            http.post("/v1/knowledge_bases", json={"name": "docs"})
            files = {"files": ("fact.txt", b"The Zorblat bridge is teal. " * 40)}
            assert http.post("/v1/knowledge_bases/docs/documents", files=files).status_code == 201
        yield served, base.id
    asyncio.run(engine.close())


def chat(http: httpx.Client, **body) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"messages": ASK, "max_tokens": 4} | body)


@pytest.mark.parametrize(
    "route, body",
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "word " * 2000}]}),
        ("/v1/chat/completions", {"messages": ASK, "max_tokens": 10**9}),
        ("/v1/chat/completions", {"messages": ASK, "max_tokens": 10**30}),
        ("/v1/completions", {"prompt": "word " * 2000}),
        ("/v1/chat/completions@docs", {"messages": [{"role": "user", "content": "bridge colour?"}], "max_tokens": 400}),
    ],
)
def test_a_prompt_longer_than_the_context_is_400_before_any_work(local, route, body):
    """A 44k-token prompt ran for 19 minutes at 12.9 GB; max_tokens 10**9 ran for over 60 s."""
    served, base = local
    path, _, kb = route.partition("@")
    model = f"{base}@{kb}" if kb else base
    start = time.perf_counter()
    with served.http() as http:
        response = http.post(path, json={"model": model} | body)
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "context_length_exceeded", response.text
    assert "maximum context length is 512 tokens" in error["message"] and time.perf_counter() - start < 30


def test_a_normal_chat_answers_while_a_huge_prompt_is_refused(local):
    served, base = local
    with served.http() as http:
        started = time.perf_counter()
        assert chat(http, model=base).status_code == 200
        usual = time.perf_counter() - started

    async def both():
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
            huge = http.post(
                "/v1/chat/completions", json={"model": base, "messages": [{"role": "user", "content": "a " * 100_000}]}
            )
            normal = http.post("/v1/chat/completions", json={"model": base, "messages": ASK, "max_tokens": 4})
            begun = time.perf_counter()
            refused, answered = await asyncio.gather(huge, normal)
            return refused, answered, time.perf_counter() - begun

    refused, answered, took = asyncio.run(both())
    assert refused.status_code == 400 and answered.status_code == 200
    assert took < usual + 10


def test_embeddings_longer_than_the_embedder_reads_are_400(gateway):
    with gateway.http() as http:
        response = http.post("/v1/embeddings", json={"model": "hashing-256", "input": ["short", "word " * 500]})
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "context_length_exceeded" and error["param"] == "input"
    assert "input[1] is 500 tokens" in error["message"]


@pytest.mark.parametrize(
    "route, body, param",
    [
        ("/v1/chat/completions", {"model": "fake-base", "messages": [{"role": "user", "content": "a\ud800c"}]},
         "messages[0].content"),
        ("/v1/completions", {"model": "fake-base", "prompt": ["ok", "a\udc00c"]}, "prompt[1]"),
        ("/v1/embeddings", {"model": "hashing-256", "input": "a\ud800c"}, "input"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_400_naming_the_field(gateway, route, body, param):
    """It was a 500 internal_error (a TypeError in the tokenizer)."""
    with gateway.http() as http:
        response = http.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    assert gateway.engine.calls == []


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1])
def test_a_seed_outside_64_bits_is_400_naming_seed(gateway, seed):
    """It was a 503 engine_unavailable."""
    with gateway.http() as http:
        response = chat(http, model="fake-base", seed=seed)
    assert response.status_code == 400 and response.json()["error"]["param"] == "seed"


def test_min_score_nan_is_400(gateway):
    body = '{"query": "x", "min_score": NaN}'
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})
        response = http.post(
            "/v1/knowledge_bases/docs/search", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400 and response.json()["error"]["param"] == "min_score"


def test_requests_without_a_key_are_refused_before_their_body_and_take_no_slot(make_gateway):
    """64 half-sent bodies without a key used to fill the admission limit: everyone got 429."""
    served = make_gateway(api_keys=["user"], max_concurrent_requests=2, body_timeout_s=30)
    host, port = served.url.removeprefix("http://").split(":")
    stalled = []
    for _ in range(8):
        connection = socket.create_connection((host, int(port)))
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model": '
        )
        stalled.append(connection)
    try:
        for connection in stalled:
            connection.settimeout(10)
            assert b" 401 " in connection.recv(4096).split(b"\r\n")[0]  # answered at once, the body never read
        with served.http("user") as http:
            assert chat(http, model="fake-base").status_code == 200
    finally:
        for connection in stalled:
            connection.close()


@pytest.mark.parametrize("content_type", [b"application/json", b"text/plain"])
def test_a_body_that_never_finishes_is_408_and_holds_no_slot(make_gateway, content_type):
    """Eight half-sent ``text/plain`` bodies from one key held every slot: everyone else got 429."""
    served = make_gateway(api_keys=["user"], max_concurrent_requests=1, body_timeout_s=1)
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user\r\n"
            b"Content-Type: " + content_type + b'\r\nContent-Length: 1000\r\n\r\n{"model": '
        )
        with served.http("user") as http:
            assert chat(http, model="fake-base").status_code == 200  # the stalled one holds no slot
        connection.settimeout(10)
        assert b" 408 " in connection.recv(4096).split(b"\r\n")[0]


def _bomb() -> bytes:
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx_bytes([("p", "x")]))) as source, zipfile.ZipFile(bomb, "w") as out:
        for member in source.infolist():
            out.writestr(member, source.read(member), compress_type=zipfile.ZIP_DEFLATED)
        out.writestr("word/media/padding.bin", b"\0" * (40 * 2**20), compress_type=zipfile.ZIP_DEFLATED)
    return bomb.getvalue()


def test_a_docx_that_unpacks_past_the_limit_is_413_naming_it_and_stores_nothing(gateway):
    """A 566 KB .docx inflated to 520 MiB in memory; now its zip directory is read first."""
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})
        response = http.post("/v1/knowledge_bases/docs/documents", files={"files": ("bomb.docx", _bomb())})
        error = response.json()["error"]
        assert response.status_code == 413 and error["code"] == "file_too_large" and "bomb.docx" in error["message"]
        assert http.get("/v1/knowledge_bases/docs/documents").json()["data"] == []


def test_a_normal_chat_answers_while_a_large_docx_is_parsed(gateway):
    """A .docx of many tiny paragraphs kept a core busy for minutes and slowed chats to 27 s."""
    data = docx_bytes([("p", f"line {i}") for i in range(30_000)])
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})

    async def both():
        async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as http:
            upload = asyncio.create_task(
                http.post("/v1/knowledge_bases/docs/documents", files={"files": ("many.docx", data)})
            )
            await asyncio.sleep(0.2)
            begun = time.perf_counter()
            answered = await http.post("/v1/chat/completions", json={"model": "fake-base", "messages": ASK})
            took = time.perf_counter() - begun
            return await upload, answered, took

    uploaded, answered, took = asyncio.run(both())
    assert uploaded.status_code == 201 and answered.status_code == 200 and took < 5


def test_a_stop_sequence_over_256_characters_is_400_before_any_work(gateway):
    """One stop string of 640,000 characters took 40 s in the engine's worker, and stalled every chat."""
    with gateway.http() as http:
        response = chat(http, model="fake-base", stop=["x" * 640_000])
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "stop" and "256 characters" in error["message"]
    assert gateway.engine.calls == []


def test_four_long_stop_sequences_cost_a_normal_chat_nothing(local):
    """Matching was quadratic in each stop string's length at every token; now it is linear in the text."""
    served, base = local
    stops = ["a" * 255 + c for c in "bcde"]
    with served.http() as http:
        started = time.perf_counter()
        assert chat(http, model=base).status_code == 200
        usual = time.perf_counter() - started

    async def both():
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
            body = {"model": base, "messages": ASK, "max_tokens": 64, "stop": stops, "temperature": 0}
            hostile = http.post("/v1/chat/completions", json=body)
            normal = http.post("/v1/chat/completions", json={"model": base, "messages": ASK, "max_tokens": 4})
            begun = time.perf_counter()
            *answers, took = *await asyncio.gather(hostile, normal), time.perf_counter() - begun
            return answers, took

    (hostile, normal), took = asyncio.run(both())
    assert hostile.status_code == 200 and normal.status_code == 200 and took < usual + 10


@pytest.mark.parametrize("content_type", ["application/x-anything+json", "text/plain", None])
def test_every_content_type_is_bounded_and_checked_before_the_route(make_gateway, content_type):
    """``application/x-anything+json`` let a 40 MB chat through (200) and a lone surrogate reach a 500."""
    served = make_gateway(max_request_mb=1)
    headers = {"content-type": content_type} if content_type else {}
    with served.http() as http:
        big = json.dumps({"model": "fake-base", "messages": [{"role": "user", "content": "a" * 2**21}]})
        response = http.post("/v1/chat/completions", content=big, headers=headers)
        assert response.status_code == 413, response.text[:300]
        surrogate = json.dumps({"model": "fake-base", "messages": [{"role": "user", "content": "a\ud800"}]})
        response = http.post("/v1/chat/completions", content=surrogate, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["param"] == "messages[0].content"
        response = http.post("/v1/chat/completions", content=b"\xff not json", headers=headers)
        assert response.status_code in (400, 415), response.text[:300]
    assert served.engine.calls == []


def test_an_upload_that_stalls_is_408(make_gateway):
    served = make_gateway(api_keys=["user"], admin_keys=["admin"], body_timeout_s=1)
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
        )
        connection.settimeout(10)
        assert b" 408 " in connection.recv(4096).split(b"\r\n")[0]
