"""Keys from a keys file: what each may see and use, its rate limits, and the file's errors."""

from __future__ import annotations

import pytest

from gateway.api.app import create_app
from gateway.api.auth import Principal
from gateway.api.rate_limits import RateLimits
from gateway.errors import LoragError
from tests.gateway.conftest import fake_settings

ASK = [{"role": "user", "content": "Hello"}]
KEYS = """
keys:
  - name: team-a
    key: key-of-team-a
    models: [fake-base, alpha]
    knowledge_bases: [kb-a]
  - name: team-b
    key: key-of-team-b
    knowledge_bases: [kb-b]
  - name: ops
    key: key-of-ops
    admin: true
  - name: metered
    key: key-metered
    requests_per_minute: 2
"""


@pytest.fixture
def scoped(make_gateway, tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    served = make_gateway(keys_file=path, reports_dir=tmp_path / "reports")
    with served.http("key-of-ops") as http:
        for kb in ("kb-a", "kb-b"):
            assert http.post("/v1/knowledge_bases", json={"name": kb}).status_code == 201
            files = {"files": (f"{kb}.txt", f"The secret of {kb} is teal.".encode())}
            assert http.post(f"/v1/knowledge_bases/{kb}/documents", files=files).status_code == 201
    return served


def test_a_key_scoped_to_one_knowledge_base_cannot_see_search_or_chat_with_another(scoped):
    with scoped.http("key-of-team-a") as http:
        assert [kb["id"] for kb in http.get("/v1/knowledge_bases").json()["data"]] == ["kb-a"]
        for path in ("/v1/knowledge_bases/kb-b", "/v1/knowledge_bases/kb-b/documents"):
            assert http.get(path).status_code == 404
        assert http.post("/v1/knowledge_bases/kb-b/search", json={"query": "secret"}).status_code == 404
        for model in ("fake-base@kb-b", "alpha@kb-b"):
            refused = http.post("/v1/chat/completions", json={"model": model, "messages": ASK})
            assert refused.status_code == 404 and "does not exist" in refused.json()["error"]["message"]  # as if absent
        rag = {"model": "fake-base", "messages": ASK, "rag": {"kb": "kb-b"}}
        assert http.post("/v1/chat/completions", json=rag).status_code == 404
        answered = http.post("/v1/chat/completions", json={"model": "alpha@kb-a", "messages": ASK})
        assert answered.status_code == 200 and answered.json()["citations"][0]["filename"] == "kb-a.txt"


def test_a_key_sees_and_uses_only_its_models(scoped):
    with scoped.http("key-of-team-a") as http:
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["fake-base", "alpha", "fake-base@kb-a"]
        assert http.post("/v1/chat/completions", json={"model": "beta", "messages": ASK}).status_code == 404
        assert http.get("/v1/models/beta").status_code == 404
    with scoped.http("key-of-team-b") as http:
        listed = [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert listed == ["fake-base", "alpha", "beta", "fake-base@kb-b"]


def test_compare_runs_belong_to_the_key_that_started_them(scoped):
    body = {"arms": ["alpha"], "questions": [{"question": "Q?", "answer": "A"}]}
    with scoped.http("key-of-team-a") as http:
        run = http.post("/v1/compare", json=body).json()
    with scoped.http("key-of-team-b") as http:
        assert http.get("/v1/compare").json()["data"] == []
        assert http.get(f"/v1/compare/{run['id']}").status_code == 404
        assert http.post(f"/v1/compare/{run['id']}/cancel").status_code == 404
    with scoped.http("key-of-ops") as http:
        assert [r["id"] for r in http.get("/v1/compare").json()["data"]] == [run["id"]]
        assert http.get(f"/v1/compare/{run['id']}").json()["owner"] == "team-a"


def test_a_key_over_its_request_rate_gets_429_with_retry_after(scoped):
    with scoped.http("key-metered") as http:
        codes = [http.get("/v1/models").status_code for _ in range(3)]
        refused = http.get("/v1/models")
    assert codes == [200, 200, 429] and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    with scoped.http("key-of-team-a") as http:
        assert http.get("/v1/models").status_code == 200  # another key is not limited


def test_a_key_over_its_tokens_waits_until_they_refill():
    now = [0.0]
    limits = RateLimits(clock=lambda: now[0])
    key = Principal("k", admin=False, tokens_per_minute=100)
    limits.admit(key)
    limits.spend(key, 250)  # one long completion overdraws the bucket
    with pytest.raises(LoragError) as refused:
        limits.admit(key)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "91"  # 151 tokens at 100/min
    now[0] = 91.0
    limits.admit(key)


@pytest.mark.parametrize(
    "text, message",
    [
        ("keys: []", "keys: List should have at least 1 item"),
        ("keys:\n  - name: a\n    key: short", "keys.0.key: Value should have at least 8"),
        ("keys:\n  - name: a\n    key: long-enough\n    scopes: [x]", "keys.0.scopes: Extra inputs are not permitted"),
        ("keys: [", "is not valid YAML"),
    ],
)
def test_a_bad_keys_file_stops_the_server_naming_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        create_app(lambda: None, settings=fake_settings(tmp_path / "adapters", keys_file=path))
    assert str(path) in str(error.value)


def test_the_environment_keys_still_work_beside_the_file(make_gateway, tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    served = make_gateway(keys_file=path, api_keys=["plain-user-key"])
    with served.http("plain-user-key") as http:
        assert len(http.get("/v1/models").json()["data"]) == 3
    with served.http("nope") as http:
        assert http.get("/v1/models").status_code == 401
