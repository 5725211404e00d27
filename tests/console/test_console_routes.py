"""How the gateway serves the console, and the loss-curve route it uses (no browser needed)."""

from __future__ import annotations

import httpx
import pytest

from gateway.console.route import STATIC

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_console_is_served_at_the_root_beside_every_api_route(demo):
    with httpx.Client(base_url=demo.url) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="app.js">' in page.text
        for script in sorted(STATIC.glob("*.js")):
            served = http.get(f"/{script.name}")
            assert served.status_code == 200 and "javascript" in served.headers["content-type"]
            assert served.text == script.read_text()
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/metrics").text.startswith("# HELP")
        assert http.get("/docs").status_code == 200
        assert "/v1/chat/completions" in http.get("/openapi.json").json()["paths"]
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["fake-base", "alpha", "beta"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/no-such-route", 404),
        ("POST", "/", 404),
        ("GET", "/no-such-file.js", 404),
        ("PUT", "/v1/models", 405),
    ],
)
def test_what_nothing_answers_is_still_an_openai_error(demo, method, path, status):
    response = httpx.request(method, f"{demo.url}{path}")
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_the_console_loads_without_a_key_while_the_api_needs_one(make_demo):
    demo = make_demo(api_keys=["user-key"])
    assert httpx.get(f"{demo.url}/").status_code == 200
    assert httpx.get(f"{demo.url}/app.js").status_code == 200
    assert httpx.get(f"{demo.url}/v1/models").json()["error"]["code"] == "invalid_api_key"


def test_an_adapters_loss_curve_is_its_png_or_a_404(make_demo):
    demo = make_demo(admin_keys=["admin-key"])
    admin = {"Authorization": "Bearer admin-key"}
    curve = httpx.get(f"{demo.url}/v1/adapters/alpha/loss_curve.png", headers=admin)
    assert curve.status_code == 200 and curve.headers["content-type"] == "image/png"
    assert curve.content == (demo.root / "adapters" / "alpha" / "loss_curve.png").read_bytes()
    assert curve.content.startswith(PNG_SIGNATURE)
    missing = httpx.get(f"{demo.url}/v1/adapters/beta/loss_curve.png", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "loss_curve_not_found"
    unknown = httpx.get(f"{demo.url}/v1/adapters/nobody/loss_curve.png", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "adapter_not_found"
    anonymous = httpx.get(f"{demo.url}/v1/adapters/alpha/loss_curve.png")
    assert anonymous.status_code == 401  # adapter administration, like GET /v1/adapters
