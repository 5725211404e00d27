"""Every error leaves with the right status and OpenAI's error JSON; API keys; overload; engine failures."""

from __future__ import annotations

import threading

import openai
import pytest

from serve.engine import EngineError
from tests.gateway.test_chat import ASK, wait_for

CHAT = "/v1/chat/completions"


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


@pytest.mark.parametrize(
    "model, named",
    [("nope", "nope"), ("nope@docs", "nope"), ("alpha@", "alpha@"), ("fake-base@docs", "knowledge base 'docs'")],
)
def test_an_unknown_model_or_a_knowledge_base_is_404_model_not_found(gateway, model, named):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().chat.completions.create(model=model, messages=ASK)
    assert caught.value.status_code == 404 and caught.value.code == "model_not_found"
    assert caught.value.param == "model" and named in caught.value.message
    if "@docs" in model and model != "nope@docs":
        assert "does not exist" in caught.value.message
    with gateway.http() as http:
        assert error_of(http.get(f"/v1/models/{model}"))["code"] == "model_not_found"


def test_a_knowledge_base_on_an_adapter_is_404_too(gateway):
    with gateway.http() as http:
        response = http.post(CHAT, json={"model": "alpha@docs", "messages": ASK})
    assert response.status_code == 404 and "'docs', which does not exist" in error_of(response)["message"]


@pytest.mark.parametrize(
    "change, param",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"n": 0}, "n"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"tool_choice": "required"}, "tools"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages[0].content"),
        ({"model": None}, "model"),
    ],
)
def test_an_invalid_parameter_is_400_naming_it(gateway, change, param):
    with gateway.http() as http:
        response = http.post(CHAT, json={"model": "alpha", "messages": ASK} | change)
    error = error_of(response)
    assert response.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param and param in error["message"]
    assert gateway.engine.calls == []


def test_legacy_completions_refuse_what_they_cannot_honour(gateway):
    with gateway.http() as http:
        for change, param in [
            ({"echo": True}, "echo"),
            ({"suffix": "x"}, "suffix"),
            ({"prompt": [1, 2]}, "prompt"),
            ({"logprobs": 6}, "logprobs"),
            ({"best_of": 3}, "best_of"),
        ]:
            response = http.post("/v1/completions", json={"model": "alpha", "prompt": "Hi"} | change)
            assert response.status_code == 400 and error_of(response)["param"] == param


def test_a_body_that_is_not_json_is_400(gateway):
    with gateway.http() as http:
        response = http.post(CHAT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in error_of(response)["message"]


def test_an_unknown_route_is_an_openai_error_too(gateway):
    with gateway.http() as http:
        response = http.get("/v1/nothing-here")
    assert response.status_code == 404 and error_of(response)["type"] == "not_found"


def test_api_keys_guard_every_v1_route_and_admin_needs_an_admin_key(make_gateway):
    served = make_gateway(api_keys=["user-key"], admin_keys=["admin-key"])
    for key in ("no-key", "user-keyX"):
        with pytest.raises(openai.AuthenticationError) as caught:
            served.client(key).chat.completions.create(model="alpha", messages=ASK)
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    with served.http() as http:
        assert "missing API key" in error_of(http.get("/v1/models"))["message"]
        assert http.get("/healthz").status_code == 200 and http.get("/metrics").status_code == 200
    assert served.client("user-key").chat.completions.create(model="alpha", messages=ASK).choices
    assert {m.id for m in served.client("admin-key").models.list()} == {"fake-base", "alpha", "beta"}
    with served.http("user-key") as http:
        response = http.get("/v1/adapters")
        assert response.status_code == 403 and error_of(response)["code"] == "insufficient_permissions"
    with served.http("wrong") as http:
        assert http.delete("/v1/adapters/alpha").status_code == 401
    with served.http("admin-key") as http:
        assert http.get("/v1/adapters").status_code == 200


def test_adapter_administration_is_closed_when_only_api_keys_are_set(make_gateway):
    served = make_gateway(api_keys=["user-key"])
    with served.http("user-key") as http:
        response = http.post("/v1/adapters", json={"name": "x", "path": "/tmp/x"})
    assert response.status_code == 403 and "LORAG_ADMIN_KEYS" in error_of(response)["message"]


def test_an_engine_that_cannot_serve_is_503(gateway):
    gateway.engine.fail = EngineError("vLLM at http://127.0.0.1:1 unreachable")
    client = gateway.client()
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="alpha", messages=ASK, stream=stream)
        assert caught.value.status_code == 503 and caught.value.code == "engine_unavailable"
        assert "unreachable" in caught.value.message


def test_over_the_concurrency_limit_is_429_with_retry_after(make_gateway):
    served = make_gateway(max_concurrent_requests=1)
    served.engine.gate.clear()
    first: list = []
    thread = threading.Thread(
        target=lambda: first.append(served.client().chat.completions.create(model="alpha", messages=ASK))
    )
    thread.start()
    wait_for(lambda: len(served.engine.calls) == 1)
    with served.http() as http:
        response = http.post(CHAT, json={"model": "beta", "messages": ASK})
        assert http.get("/v1/models").status_code == 200  # only completions count against the limit
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert error_of(response)["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError):
        served.client().completions.create(model="beta", prompt="Hi")
    served.engine.gate.set()
    thread.join(10)
    assert first[0].choices[0].message.content == "alpha says Who are you?"
    assert served.client().chat.completions.create(model="beta", messages=ASK).choices
