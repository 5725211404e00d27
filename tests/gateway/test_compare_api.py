"""POST /v1/compare end to end on the fake engine: start, poll, fetch the report files, errors, keys, restarts."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from gateway.compare.service import CompareService, allowed_url
from tests.fakes.fake_engine import FakeEngine

BROKEN_JSONL = '{"question": "Q", "answer": "A"}\n{'
QUESTIONS = [{"question": f"name fact {i}", "answer": f"alpha says name fact {i}"} for i in range(8)]


@pytest.fixture
def gateway(make_gateway, tmp_path):
    """The fake gateway with its compare reports in tmp_path/reports."""
    return make_gateway(reports_dir=tmp_path / "reports")


def wait(http: httpx.Client, run_id: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while (run := http.get(f"/v1/compare/{run_id}").json())["status"] == "running":
        assert time.monotonic() < deadline, f"compare run still running: {run}"
        time.sleep(0.05)
    return run


def test_compare_run_completes_with_summary_and_report_files(gateway, tmp_path):
    http = gateway.http()
    started = http.post("/v1/compare", json={"arms": ["fake-base", "alpha"], "questions": QUESTIONS})
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["object"] == "compare.run" and run["id"].startswith("cmp-") and run["status"] == "running"
    assert run["progress"]["total"] == 16 and run["arms"] == ["fake-base", "alpha"]
    assert run["report"]["html"] == f"/v1/compare/{run['id']}/report.html"
    done = wait(http, run["id"])
    assert done["status"] == "completed" and done["error"] is None
    assert done["progress"] == {"done": 16, "total": 16}
    summary = {row["arm"]: row for row in done["summary"]}
    assert summary["alpha"]["exact_match"] == 1.0 and summary["fake-base"]["exact_match"] == 0.0
    assert summary["alpha"]["ci"]["f1"] == [1.0, 1.0] and summary["fake-base"]["latency_s"] > 0
    files = {
        "report.html": "text/html", "report.md": "text/markdown", "report.json": "application/json",
        "chart.png": "image/png",
    }  # fmt: skip
    for name, media_type in files.items():
        response = http.get(f"/v1/compare/{run['id']}/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
    report = http.get(done["report"]["json"]).json()
    assert {a["arm"] for a in report["answers"]} == {"fake-base", "alpha"} and len(report["answers"]) == 16
    assert "alpha says name fact 7" in http.get(done["report"]["markdown"]).text
    assert http.get(done["report"]["chart"]).content.startswith(b"\x89PNG")
    listed = http.get("/v1/compare").json()
    assert listed["object"] == "list" and [r["id"] for r in listed["data"]] == [run["id"]]
    assert (tmp_path / "reports" / run["id"] / "report.html").exists()


def test_questions_file_in_wiki_format_with_limit(gateway):
    document = {
        "id": "9_9_9", "page_title": "X", "evidence_text": "X was born in 1990.",
        "qa_pairs": [{"text": f"q{i}", "output": f"alpha says q{i}\nRef: <X>"} for i in range(6)],
    }  # fmt: skip
    body = {
        "arms": ["alpha"], "limit": 3, "max_tokens": 2,
        "questions_file": {"filename": "bio.json", "content": json.dumps([document], indent=1)},
    }  # fmt: skip
    http = gateway.http()
    run = wait(http, http.post("/v1/compare", json=body).json()["id"])
    report = http.get(run["report"]["json"]).json()
    assert len(report["questions"]) == 3 and all(q["id"].startswith("9_9_9-") for q in report["questions"])
    assert report["questions"][0]["context"] == "X was born in 1990."
    assert all(a["text"] == "alpha says" and a["finish_reason"] == "length" for a in report["answers"])


@pytest.mark.parametrize(
    "body, param, message",
    [
        ({"arms": ["nope"], "questions": QUESTIONS}, "arms", "unknown arm 'nope'"),
        ({"arms": [], "questions": QUESTIONS}, "arms", "at least 1 item"),
        ({"arms": ["alpha"]}, None, "give either 'questions' or 'questions_file'"),
        ({"arms": ["alpha"], "questions": [{"question": "Q"}]}, "questions", "questions:1: 'answer' must be"),
        (
            {"arms": ["alpha"], "questions_file": {"filename": "q.jsonl", "content": BROKEN_JSONL}},
            "questions_file", "q.jsonl:2: not valid JSON",
        ),
        ({"arms": ["alpha"], "questions": QUESTIONS, "concurrency": 0}, "concurrency", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_requests_are_400_and_start_nothing(gateway, body, param, message):
    response = gateway.http().post("/v1/compare", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"]
    assert gateway.http().get("/v1/compare").json()["data"] == [] and gateway.engine.calls == []


def test_unknown_run_and_report_before_completion(make_gateway, tmp_path):
    engine = FakeEngine()
    served = make_gateway(engine, reports_dir=tmp_path / "reports")
    http = served.http()
    missing = http.get("/v1/compare/cmp-nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "compare_run_not_found"
    engine.gate.clear()  # every answer waits until the gate opens
    run = http.post("/v1/compare", json={"arms": ["alpha"], "questions": QUESTIONS}).json()
    early = http.get(run["report"]["html"])
    assert early.status_code == 404 and early.json()["error"]["code"] == "compare_report_not_ready"
    assert http.get(f"/v1/compare/{run['id']}/secrets.txt").status_code == 404
    engine.gate.set()
    assert wait(http, run["id"])["status"] == "completed"
    assert http.get(run["report"]["html"]).status_code == 200


def test_api_keys_are_required_and_forwarded(make_gateway, tmp_path):
    served = make_gateway(api_keys="sesame", reports_dir=tmp_path / "reports")
    body = {"arms": ["fake-base", "alpha"], "questions": QUESTIONS[:2]}
    assert served.http().post("/v1/compare", json=body).status_code == 401
    http = served.http("sesame")
    run = wait(http, http.post("/v1/compare", json=body).json()["id"])
    assert run["status"] == "completed" and all(row["errors"] == 0 for row in run["summary"])


def test_failed_answers_do_not_fail_the_run(make_gateway, tmp_path):
    engine = FakeEngine()
    served = make_gateway(engine, reports_dir=tmp_path / "reports")
    engine.fail = RuntimeError("out of memory")
    http = served.http()
    run = wait(http, http.post("/v1/compare", json={"arms": ["alpha"], "questions": QUESTIONS}).json()["id"])
    assert run["status"] == "completed" and run["summary"][0]["errors"] == 8
    answers = http.get(run["report"]["json"]).json()["answers"]
    assert all(a["error"].startswith("InternalServerError: Error code: 500") for a in answers)


def test_runs_are_listed_again_after_a_restart(gateway, tmp_path):
    http = gateway.http()
    run = wait(http, http.post("/v1/compare", json={"arms": ["alpha"], "questions": QUESTIONS[:1]}).json()["id"])
    reloaded = CompareService(tmp_path / "reports", connect=None)
    assert reloaded.get(run["id"]).model_dump() == run


def test_judge_at_another_endpoint_gives_verdicts(make_gateway, tmp_path):
    judge = make_gateway(FakeEngine(base_model="1"))  # its answers start with "1": a judge that says correct
    served = make_gateway(reports_dir=tmp_path / "reports", outbound_urls=[judge.url])
    body = {"arms": ["fake-base", "alpha"], "questions": QUESTIONS[:3],
            "judge": {"model": "1", "base_url": f"{judge.url}/v1", "api_key": "judge-key"}}  # fmt: skip
    http = served.http()
    run = wait(http, http.post("/v1/compare", json=body).json()["id"])
    assert run["status"] == "completed" and all(row["judge"] == 1.0 for row in run["summary"])
    report = http.get(run["report"]["json"]).json()
    assert report["config"]["judge_base_url"] == f"{judge.url}/v1" and "judge-key" not in json.dumps(report)
    assert len(judge.engine.calls) == 6 and all(a["judge_raw"].startswith("1 says") for a in report["answers"])


@pytest.mark.parametrize("where", ["this gateway", "another endpoint"])
def test_an_unknown_judge_model_is_400_before_anything_runs(make_gateway, tmp_path, where):
    judge = make_gateway(FakeEngine(base_model="1"))
    served = make_gateway(reports_dir=tmp_path / "reports", outbound_urls=[f"{judge.url}/v1"])
    spec = {"model": "gpt-4o-mni"} | ({"base_url": f"{judge.url}/v1"} if where != "this gateway" else {})
    response = served.http().post("/v1/compare", json={"arms": ["alpha"], "questions": QUESTIONS, "judge": spec})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    at = (
        "this gateway: use one of alpha, beta, fake-base"
        if where == "this gateway"
        else f"{judge.url}/v1"  # another server's answer is never echoed
    )
    assert error["param"] == "judge" and error["message"] == f"unknown judge model 'gpt-4o-mni' at {at}"
    assert served.http().get("/v1/compare").json()["data"] == [] and served.engine.calls == judge.engine.calls == []


def test_cancel_stops_the_runs_requests(make_gateway, tmp_path):
    engine = FakeEngine()
    served = make_gateway(engine, reports_dir=tmp_path / "reports")
    http = served.http()
    engine.gate.clear()  # every answer waits until the gate opens
    run = http.post("/v1/compare", json={"arms": ["alpha"], "questions": QUESTIONS, "concurrency": 2}).json()
    deadline = time.monotonic() + 10
    while len(engine.calls) < 2:  # both requests of the run are in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    cancelled = http.post(f"/v1/compare/{run['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["progress"] == {"done": 0, "total": 8}
    assert engine.closed == ["alpha", "alpha"]  # the engine stopped generating them
    engine.gate.set()
    time.sleep(0.2)
    assert len(engine.calls) == 2  # and the other six questions were never asked
    assert http.get(f"/v1/compare/{run['id']}").json()["status"] == "cancelled"
    assert http.get(run["report"]["html"]).json()["error"]["code"] == "compare_report_not_ready"
    again = http.post(f"/v1/compare/{run['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "compare_run_not_running"
    assert http.post("/v1/compare/cmp-nope/cancel").status_code == 404
    assert (
        CompareService(tmp_path / "reports", connect=None).get(run["id"]).status == "cancelled"
    )  # and so after a restart


def test_at_most_two_runs_go_at_once(make_gateway, tmp_path):
    engine = FakeEngine()
    served = make_gateway(engine, reports_dir=tmp_path / "reports")
    http = served.http()
    engine.gate.clear()
    body = {"arms": ["alpha"], "questions": QUESTIONS[:1]}
    first, second = (http.post("/v1/compare", json=body) for _ in range(2))
    assert first.status_code == second.status_code == 202
    third = http.post("/v1/compare", json=body)
    assert third.status_code == 429 and third.headers["Retry-After"] == "30"
    error = third.json()["error"]
    assert error["code"] == "too_many_compare_runs" and "POST /v1/compare/{id}/cancel" in error["message"]
    assert len(http.get("/v1/compare").json()["data"]) == 2
    assert http.post(f"/v1/compare/{first.json()['id']}/cancel").status_code == 200
    fourth = http.post("/v1/compare", json=body)
    assert fourth.status_code == 202
    engine.gate.set()
    assert wait(http, second.json()["id"])["status"] == wait(http, fourth.json()["id"])["status"] == "completed"


def test_a_run_on_a_busy_gateway_waits_its_turn_instead_of_recording_429s(make_gateway, tmp_path):
    busy = make_gateway(FakeEngine(word_delay_s=0.01), max_concurrent_requests=1, reports_dir=tmp_path / "reports")
    http = busy.http()
    body = {"arms": ["fake-base", "alpha"], "questions": QUESTIONS, "concurrency": 4}
    done = wait(http, http.post("/v1/compare", json=body).json()["id"])
    assert done["status"] == "completed"
    assert [row["errors"] for row in done["summary"]] == [0, 0]
    assert {row["arm"]: row["exact_match"] for row in done["summary"]} == {"fake-base": 0.0, "alpha": 1.0}


@pytest.mark.parametrize("allowed", [[], ["{url}/v1"]])
@pytest.mark.parametrize("path", ["/v1", "/v1evil", "/other"])
def test_a_judge_outside_the_gateway_must_be_allowed_by_the_operator(make_gateway, tmp_path, allowed, path):
    """Server-side request forgery: a user key must not make the server call any URL it names."""
    judge = make_gateway(FakeEngine(base_model="1"))
    served = make_gateway(reports_dir=tmp_path / "reports", outbound_urls=[a.format(url=judge.url) for a in allowed])
    spec = {"model": "nope", "base_url": f"{judge.url}{path}"}
    error = served.http().post("/v1/compare", json={"arms": ["alpha"], "questions": QUESTIONS, "judge": spec}).json()
    if allowed and path == "/v1":
        assert error["error"]["param"] == "judge" and "at" in error["error"]["message"]  # checked, not echoed
    else:
        assert error["error"]["param"] == "judge.base_url" and "LORAG_OUTBOUND_URLS" in error["error"]["message"]


def test_allowed_urls_match_origin_and_path_not_text():
    allowed = ("https://api.openai.com/v1",)
    assert allowed_url("https://api.openai.com/v1", allowed) and allowed_url("https://api.openai.com/v1/", allowed)
    for url in ("https://api.openai.com.evil.com/v1", "https://api.openai.com/v1evil", "http://api.openai.com/v1",
                "https://api.openai.com:8443/v1", "https://evil.com/?https://api.openai.com/v1"):  # fmt: skip
        assert not allowed_url(url, allowed), url
