"""The completion routes' short way (gateway/api/completion_route.py) answers as FastAPI's routes do."""

import json

import pytest

from tests.gateway.test_chat import ASK

BODY = json.dumps({"model": "alpha", "messages": ASK})
LEGACY = json.dumps({"model": "alpha", "prompt": "Hi"})


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"])
def test_json_bodies_are_served_whatever_their_json_content_type(gateway, content_type):
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", content=BODY, headers={"content-type": content_type})
        legacy = http.post("/v1/completions", content=LEGACY, headers={"content-type": content_type})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"].startswith("alpha")
    assert legacy.status_code == 200 and legacy.json()["object"] == "text_completion"


def test_a_body_not_sent_as_json_is_refused_as_fastapi_refuses_it(gateway):
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", content=BODY, headers={"content-type": "text/plain"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert gateway.engine.calls == []


def test_invalid_bodies_get_fastapis_400_naming_the_field(gateway):
    with gateway.http() as http:
        bad = http.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK, "temperature": "hot"})
        broken = http.post("/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"})
        unknown = http.post("/v1/chat/completions", json={"model": "nope", "messages": ASK})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert gateway.engine.calls == []
