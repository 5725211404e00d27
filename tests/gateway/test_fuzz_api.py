"""The hostile-input suite: schemathesis over the gateway's own /openapi.json, and no server errors.

Every operation gets generated requests, valid and invalid, against a gateway on the fake engine
with two adapters, a knowledge base holding a document and a stored response. Half of the
requests that name a model, a knowledge base or a stored response name real ones (``alpha``,
``docs@...``, the response's id), so the fuzzing reaches the code behind the 404s. Examples
are bounded per operation so the suite takes about a minute. The only check is the one that
matters here: no 5xx, whatever comes in (the other checks judge the schema's strictness, which
OpenAI's API does not promise either). The examples are derandomized, so CI runs the same ones
every time; run with a random seed while hunting by removing ``derandomize``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine, write_adapter
from tests.gateway.conftest import fake_settings, serving

REAL_MODELS = ["fake-base", "alpha", "beta", "fake-base@docs", "alpha@docs"]
STORED: list[str] = []  # a stored response's id, for the /v1/responses/{response_id} routes
ATTACHED: list[str] = []  # a file attached to the vector store 'docs' (the knowledge base), for its file routes
SKIPPED = {"POST /v1/compare"}  # starts background runs against the app itself: fuzzed by its own tests


def _app():
    """The app under test, over the fake engine with adapters 'alpha' and 'beta', in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="lorag-fuzz-")) / "adapters"
    for name in ("alpha", "beta"):
        write_adapter(folder / name)
    engine = FakeEngine()
    registry = AdapterRegistry(folder, engine.info.base_model, FAKE_SHA256, engine.info.limits)
    return create_app(engine, registry, fake_settings(folder, reports_dir=folder.with_name("reports")))


APP = _app()
schema = schemathesis.openapi.from_dict(APP.openapi())


@pytest.fixture(scope="module")
def live_url():
    """The app served on loopback, with a knowledge base 'docs' holding one document."""
    with serving(APP) as url:
        with httpx.Client(base_url=url) as http:
            http.post("/v1/knowledge_bases", json={"name": "docs"})
            http.post("/v1/knowledge_bases/docs/documents", files={"files": ("a.txt", b"The bridge is teal.")})
            STORED.append(http.post("/v1/responses", json={"model": "alpha", "input": "Hi"}).json()["id"])
            file = http.post("/v1/files", files={"file": ("b.txt", b"Teal.")}, data={"purpose": "assistants"}).json()
            http.post("/v1/vector_stores/docs/files", json={"file_id": file["id"]})
            ATTACHED.append(file["id"])
        yield url


@schema.parametrize()
@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_server_fail(case, live_url):
    if f"{case.method.upper()} {case.path}" in SKIPPED:
        pytest.skip("fuzzed by its own tests")
    _use_real_names(case)
    case.call_and_validate(base_url=live_url, checks=[not_a_server_error], timeout=30)


def _use_real_names(case) -> None:
    """Half the time, name models and knowledge bases that exist, so the request gets past the 404s."""
    seed = hash(repr(case.body)) & 1
    if not seed:
        return
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = REAL_MODELS[hash(repr(case.body)) % len(REAL_MODELS)]
    for name, value in (case.path_parameters or {}).items():
        if name in ("kb", "vector_store_id"):
            case.path_parameters[name] = "docs"
        elif name == "file_id" and "/vector_stores/" in case.path:
            case.path_parameters[name] = ATTACHED[0]
        elif name in ("model", "name"):
            case.path_parameters[name] = "alpha" if value else value
        elif name == "response_id":
            case.path_parameters[name] = STORED[0]


BODY_ROUTES = [
    (method.upper(), path)
    for path, operations in APP.openapi()["paths"].items()
    for method in operations
    if method in ("post", "put", "patch") and f"{method.upper()} {path}" not in SKIPPED
]
BODIES = [
    ("text/plain", b'{"model": "alpha", "input": "Hi", "messages": [{"role": "user", "content": "Hi"}]}'),
    ("application/x-anything+json", b'{"model": "alpha", "name": "x\\ud800"}'),
    ("application/xml", b"<a>\xff\xfe</a>"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'),
    ("application/json", b"\xff\xfe not json"),
]


@pytest.mark.parametrize("method, path", BODY_ROUTES)
def test_a_body_of_any_content_type_is_never_a_server_error(method, path, live_url):
    """``application/x-anything+json`` skipped admission (a 40 MB body got 200, a lone surrogate a 500)."""
    url = path.replace("{kb}", "docs").replace("{vector_store_id}", "docs")
    with httpx.Client(base_url=live_url, timeout=30) as http:
        for content_type, body in BODIES:
            response = http.request(method, url, content=body, headers={"content-type": content_type})
            assert response.status_code < 500, (content_type, response.status_code, response.text[:300])
