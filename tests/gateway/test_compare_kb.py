"""Retrieval arms (``<model>@<kb>``) in a comparison, on the fake engine and the hashing embedder.

The fake engine repeats its (augmented) prompt, so a ``@kb`` arm's answer contains the sources
it was given: it scores where the base model cannot, and "answer in sources" says whether
retrieval found the document with the reference answer.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from openai import AsyncOpenAI
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.compare.report import write_report
from gateway.compare.runner import CompareConfig, run_compare
from gateway.data.questions import Question
from tests.gateway.test_compare_api import wait

CITIES = ["Zubrowka", "Freedonia", "Latveria", "Genovia", "Sokovia", "Wakanda", "Elbonia", "Krakozhia"]
FACTS = [
    (f"What is the capital of country {i}?", f"The capital of country {i} is {city}.") for i, city in enumerate(CITIES)
]


def knowledge_base(http, name: str = "docs") -> None:
    assert http.post("/v1/knowledge_bases", json={"name": name}).status_code == 201
    files = [("files", (f"country-{i}.txt", fact.encode(), "text/plain")) for i, (_, fact) in enumerate(FACTS)]
    assert http.post(f"/v1/knowledge_bases/{name}/documents", files=files).status_code == 201


def questions() -> list[dict]:
    rows = [{"id": f"c{i}", "question": q, "answer": CITIES[i]} for i, (q, _) in enumerate(FACTS)]
    rows.append({"id": "missing", "question": "What is the capital of country 99?", "answer": "Atlantis"})
    return rows


def test_kb_arms_record_citations_and_whether_sources_hold_the_answer(gateway, tmp_path):
    knowledge_base(gateway.http())
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in questions()))
    out = tmp_path / "r"
    args = ["compare", "--questions", str(path), "--arms", "fake-base,fake-base@docs,alpha@docs",
            "--base-url", gateway.url, "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    summary = {row["arm"]: row for row in report["summary"]}
    assert "source_recall" not in summary["fake-base"]
    # the sources ride in the prompt: a retrieval arm pays for them in prompt tokens, not in completion tokens
    assert summary["fake-base@docs"]["prompt_tokens"] > 5 * summary["fake-base"]["prompt_tokens"] > 0
    assert summary["fake-base@docs"]["source_errors"] == 0 and "source_errors" not in summary["fake-base"]
    for arm in ("fake-base@docs", "alpha@docs"):
        assert summary[arm]["source_recall"] == 8 / 9  # every city but Atlantis is in the knowledge base
        assert summary[arm]["f1"] > 0 == summary["fake-base"]["f1"]
    answers = {(a["question_id"], a["arm"]): a for a in report["answers"]}
    kb_answer = answers[("c2", "alpha@docs")]
    assert kb_answer["scores"]["source_recall"] == 1.0 and any("Latveria" in s for s in kb_answer["sources"])
    assert kb_answer["citations"] and kb_answer["citations"][0]["filename"].startswith("country-")
    assert answers[("missing", "alpha@docs")]["scores"]["source_recall"] == 0.0
    assert answers[("c2", "fake-base")]["citations"] is None and answers[("c2", "fake-base")]["sources"] is None
    tests = {(t["a"], t["b"], t["metric"]): t for t in report["pairwise"]}
    assert tests[("fake-base", "fake-base@docs", "f1")]["significant"]
    assert ("fake-base", "alpha@docs", "source_recall") not in tests
    assert tests[("fake-base@docs", "alpha@docs", "source_recall")]["p_value"] == 1.0
    assert "answer in sources" in (out / "report.md").read_text()
    assert "answer in sources" in (out / "report.html").read_text()


def test_kb_arm_through_the_api(make_gateway, tmp_path):
    served = make_gateway(reports_dir=tmp_path / "reports")
    http = served.http()
    knowledge_base(http)
    run = http.post("/v1/compare", json={"arms": ["beta@docs"], "questions": questions()}).json()
    done = wait(http, run["id"])
    assert done["status"] == "completed" and done["summary"][0]["source_recall"] == 8 / 9


def test_unknown_knowledge_base_is_refused(make_gateway, tmp_path):
    served = make_gateway(reports_dir=tmp_path / "reports")
    knowledge_base(served.http())
    response = served.http().post("/v1/compare", json={"arms": ["alpha@nodocs"], "questions": questions()})
    assert response.status_code == 400
    assert "with a knowledge base from docs" in response.json()["error"]["message"]


class FailingSearch(httpx.AsyncBaseTransport):
    """HTTP to the gateway, except that a knowledge-base search for ``query_part`` answers 500."""

    def __init__(self, query_part: str):
        self.inner, self.query_part = httpx.AsyncHTTPTransport(), query_part

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/search") and self.query_part in request.content.decode():
            body = {"error": {"message": "the index is corrupt", "type": "server_error", "param": None, "code": None}}
            return httpx.Response(500, json=body, request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_failed_source_search_keeps_the_answer_and_leaves_answer_in_sources_unknown(gateway, tmp_path):
    knowledge_base(gateway.http())
    asked = [Question(row["id"], row["question"], row["answer"]) for row in questions()]

    async def main():
        http = httpx.AsyncClient(transport=FailingSearch("country 2?"))
        client = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="none", max_retries=0, http_client=http)
        async with client:
            return await run_compare(client, asked, CompareConfig(arms=["alpha@docs"]))

    report = write_report(asyncio.run(main()), tmp_path / "r")
    answers = {a["question_id"]: a for a in report["answers"]}
    failed = answers["c2"]
    assert failed["error"] is None and failed["text"].startswith("alpha says") and failed["scores"]["f1"] > 0
    assert failed["sources"] is None and failed["scores"]["source_recall"] is None
    assert failed["sources_error"].startswith("InternalServerError: Error code: 500")
    assert answers["c3"]["scores"]["source_recall"] == 1.0 and answers["c3"]["sources_error"] is None
    [row] = report["summary"]
    assert row["errors"] == 0 and row["source_errors"] == 1
    assert row["source_recall"] == 7 / 8  # over the 8 answers whose sources were checked; Atlantis is not there
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "The search for the sources of 1 answer failed: answer in sources is unknown (-) there." in markdown
