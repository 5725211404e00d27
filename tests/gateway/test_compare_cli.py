"""``lorag compare`` end to end against a gateway over the fake engine, which answers "<model> says <question>".

The reference answers are what adapter 'alpha' says, so alpha must win every metric, and
significantly; the base model's answers share all but its name with them.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.compare.report import FILES
from tests.fakes.fake_engine import FakeEngine

QUESTIONS = [f"what is fact number {i}" for i in range(10)]


def write_questions(folder: Path, speaker: str = "alpha") -> Path:
    path = folder / "questions.jsonl"
    rows = [{"question": q, "answer": f"{speaker} says {q}", "id": f"q{i}"} for i, q in enumerate(QUESTIONS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["compare", *args])


def test_compare_scores_every_arm_and_writes_the_report(gateway, tmp_path):
    out = tmp_path / "report"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "fake-base,alpha",
                 "--base-url", gateway.url, "--out", str(out), "--concurrency", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.html'}" in result.stdout
    assert "significant: alpha beats fake-base on exact match by 1.000 (p = 0.0020)" in result.stdout
    for name in FILES:
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    summary = {row["arm"]: row for row in report["summary"]}
    assert set(summary) == {"fake-base", "alpha"}
    assert summary["alpha"]["exact_match"] == 1.0 and summary["alpha"]["f1"] == 1.0
    assert summary["fake-base"]["exact_match"] == 0.0
    assert 0.5 < summary["fake-base"]["f1"] < 1.0  # shares "says <question>" with the reference
    assert summary["alpha"]["errors"] == 0 and summary["alpha"]["completion_tokens"] == pytest.approx(7.0)
    assert summary["alpha"]["prompt_tokens"] == pytest.approx(5.0)  # the fake counts the question's 5 words
    header = result.stdout.splitlines()[0]
    assert "prompt tokens" in header and "completion tokens" in header
    low, high = summary["fake-base"]["ci"]["f1"]
    assert low <= summary["fake-base"]["f1"] <= high
    answers = {(a["question_id"], a["arm"]): a for a in report["answers"]}
    assert len(answers) == 20
    assert answers[("q3", "alpha")]["text"] == "alpha says what is fact number 3"
    assert (answers[("q3", "alpha")]["prompt_tokens"], answers[("q3", "alpha")]["completion_tokens"]) == (5, 7)
    assert answers[("q3", "fake-base")]["latency_s"] > 0
    em = next(t for t in report["pairwise"] if t["metric"] == "exact_match")
    assert (em["a"], em["b"], em["difference"]["mean"]) == ("fake-base", "alpha", -1.0)
    assert em["exact"] and em["p_value"] == pytest.approx(2 / 2**10) and em["significant"]
    assert report["config"]["temperature"] == 0.0 and report["config"]["arms"] == ["fake-base", "alpha"]
    # every arm's question went through the chat API at temperature 0 and the asked max_tokens
    asked = [(params.temperature, params.max_tokens, adapter) for _, params, adapter in gateway.engine.calls]
    assert sorted(asked, key=str) == sorted([(0.0, 64, None)] * 10 + [(0.0, 64, "alpha")] * 10, key=str)
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        assert "fake-base" in text and "alpha says what is fact number 9" in text
        assert "prompt tokens" in text and "completion tokens" in text
    assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_a_p_value_below_four_decimals_is_shown_as_a_bound_not_as_zero(gateway, tmp_path):
    """20 differing questions: the Monte Carlo p-value is its minimum, 2/(1 + 20000), not 0 (scipy's two-sided p is
    twice the smaller one-sided (1 + hits)/(1 + draws))."""
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"alpha says q{i}"}) + "\n" for i in range(20)))
    out = tmp_path / "r"
    result = run("--questions", str(path), "--arms", "fake-base,alpha", "--base-url", gateway.url, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "significant: alpha beats fake-base on exact match by 1.000 (p < 0.0001)" in result.stdout
    em = next(t for t in json.loads((out / "report.json").read_text())["pairwise"] if t["metric"] == "exact_match")
    assert em["p_value"] == pytest.approx(2 / 20001) and not em["exact"]  # report.json keeps the number
    markdown = (out / "report.md").read_text()
    assert "| fake-base | alpha | exact match | -1.000 [-1.000, -1.000] | 20 | <0.0001 | yes |" in markdown
    for name in ("report.md", "report.html"):
        assert "0.0000" not in (out / name).read_text()
    assert "&lt;0.0001" in (out / "report.html").read_text()


class CountingEngine(FakeEngine):
    """The fake engine, noting the most requests in flight at once. It holds every request until ``until`` are in
    flight together (at most 5 s), so a runner that sent one request at a time would show a maximum of 1."""

    def __init__(self, until: int):
        super().__init__()
        self.until, self.in_flight, self.most = until, 0, 0

    async def stream(self, messages, params, adapter=None):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            deadline = time.monotonic() + 5
            while self.most < self.until and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            async for delta in super().stream(messages, params, adapter):
                yield delta
        finally:
            self.in_flight -= 1


def test_concurrency_requests_are_in_flight_at_once_and_no_more(make_gateway, tmp_path):
    engine = CountingEngine(until=3)
    served = make_gateway(engine)
    started = time.monotonic()
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "fake-base,alpha", "--base-url", served.url,
                 "--out", str(tmp_path / "r"), "--concurrency", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert engine.most == 3 and len(engine.calls) == 20
    assert time.monotonic() - started < 5  # released by the third request, not by the deadline


def test_report_shows_worst_disagreements_first(gateway, tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "agree", "question": "x", "answer": "nothing alike"},  # both arms score 0
        {"id": "split", "question": "y", "answer": "alpha says y"},  # alpha 1, base partly
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "r"
    result = run("--questions", str(path), "--arms", "fake-base,alpha", "--base-url", gateway.url, "--out", str(out))
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    assert markdown.index("### split: y") < markdown.index("### agree: x")


def test_html_report_escapes_answers(gateway, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "<script>alert(1)</script>", "answer": "a & b"}) + "\n")
    out = tmp_path / "r"
    assert run("--questions", str(path), "--arms", "alpha", "--base-url", gateway.url, "--out", str(out)).exit_code == 0
    html = (out / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a &amp; b" in html


def test_failed_requests_are_recorded_not_fatal(make_gateway, tmp_path):
    engine = FakeEngine()
    served = make_gateway(engine)
    engine.fail = RuntimeError("the GPU caught fire")
    out = tmp_path / "r"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "alpha", "--base-url", served.url,
                 "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["summary"][0]["errors"] == 10 and report["summary"][0]["f1"] is None
    assert all(a["error"] and a["scores"] == {} for a in report["answers"])
    assert "error: " in (out / "report.md").read_text()


def test_judge_verdicts_from_another_endpoint(make_gateway, gateway, tmp_path):
    judge = make_gateway(FakeEngine(base_model="1"))  # its answers start with "1": a judge that says correct
    out = tmp_path / "r"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "fake-base,alpha", "--base-url", gateway.url,
                 "--judge", "1", "--judge-base-url", f"{judge.url}/v1", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert all(row["judge"] == 1.0 and row["judge_unparsed"] == 0 for row in report["summary"])
    assert all(a["judge_raw"].startswith("1 says You are grading") for a in report["answers"])
    assert len(judge.engine.calls) == 20 and all(params.temperature == 0 for _, params, _ in judge.engine.calls)
    assert "judge" in (out / "report.md").read_text()


@pytest.mark.parametrize("where", ["same", "other"])
def test_an_unknown_judge_model_fails_before_any_question(make_gateway, gateway, tmp_path, where):
    judge = make_gateway(FakeEngine(base_model="1"))
    at = ["--judge-base-url", f"{judge.url}/v1"] if where == "other" else []
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "alpha", "--base-url", gateway.url,
                 "--judge", "gpt-4o-mni", *at, "--out", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    listed = f"{judge.url}/v1: use one of 1" if where == "other" else "the gateway being compared: use one of alpha,"
    assert result.stderr.startswith(f"error: unknown judge model 'gpt-4o-mni' at {listed}")
    assert gateway.engine.calls == [] == judge.engine.calls and not (tmp_path / "r").exists()


def test_judge_without_a_verdict_is_left_out(gateway, tmp_path):
    out = tmp_path / "r"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "alpha", "--base-url", gateway.url,
                 "--judge", "beta", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    row = json.loads((out / "report.json").read_text())["summary"][0]
    assert row["judge"] is None and row["judge_unparsed"] == 10  # "beta says ..." is no verdict


@pytest.mark.parametrize(
    "arms, message",
    [
        ("fake-base,nope", "unknown arm 'nope': use one of the models alpha, beta, fake-base"),
        ("alpha@nokb", "unknown arm 'alpha@nokb'"),
        ("alpha,alpha", "an arm is named twice"),
    ],
)
def test_unknown_arms_fail_before_any_question(gateway, tmp_path, arms, message):
    result = run("--questions", str(write_questions(tmp_path)), "--arms", arms, "--base-url", gateway.url,
                 "--out", str(tmp_path / "r"))  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert gateway.engine.calls == [] and not (tmp_path / "r").exists()


def test_rescore_scores_the_answers_of_a_report_again_without_asking(gateway, tmp_path):
    out = tmp_path / "r"
    questions = str(write_questions(tmp_path))
    run_ = run("--questions", questions, "--arms", "fake-base,alpha", "--base-url", gateway.url, "--out", str(out))
    assert run_.exit_code == 0, run_.output
    original = json.loads((out / "report.json").read_text())
    stale = json.loads(json.dumps(original))  # as an older lorag scored it: wrong scores, no prompt_tokens field
    for answer in stale["answers"]:
        answer["scores"] = {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}
        del answer["prompt_tokens"], answer["sources_error"]
    stale["summary"][1]["f1"] = 0.0
    (out / "report.json").write_text(json.dumps(stale))
    (out / "report.md").write_text("stale")
    calls = len(gateway.engine.calls)
    again = run("--rescore", str(out / "report.json"))  # rewrites the report's own folder
    assert again.exit_code == 0, again.output
    assert len(gateway.engine.calls) == calls and f"report: {out / 'report.html'}" in again.stdout
    rescored = json.loads((out / "report.json").read_text())
    assert [a["scores"] for a in rescored["answers"]] == [a["scores"] for a in original["answers"]]
    assert [a["text"] for a in rescored["answers"]] == [a["text"] for a in original["answers"]]
    summary = {row["arm"]: row for row in rescored["summary"]}
    assert summary["alpha"]["f1"] == 1.0 and summary["alpha"]["prompt_tokens"] is None  # not recorded back then
    for key in ("config", "started", "finished", "duration_s", "questions", "pairwise"):
        assert rescored[key] == original[key]
    assert "| alpha | 1.000 [1.000, 1.000]" in (out / "report.md").read_text()
    elsewhere = run("--rescore", str(out / "report.json"), "--out", str(tmp_path / "elsewhere"))
    assert elsewhere.exit_code == 0 and (tmp_path / "elsewhere" / "report.html").exists()


def test_rescore_input_errors_are_one_line(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"object": "list"}')
    result = run("--rescore", str(bad))
    assert result.exit_code == 1
    assert result.stderr == f'error: {bad}: not a lorag compare report.json (no "object": "compare.report")\n'
    both = run("--rescore", str(bad), "--arms", "alpha")
    assert (
        both.exit_code == 1 and both.stderr == "error: --rescore asks no questions: leave out --questions and --arms\n"
    )
    neither = run("--arms", "alpha")
    assert (
        neither.exit_code == 1 and neither.stderr == "error: give --questions and --arms (or --rescore REPORT.json)\n"
    )


def test_bad_input_is_one_line(gateway, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Q", "answer": "A"}\n{"question": "Q2"}\n')
    result = run("--questions", str(path), "--arms", "alpha", "--base-url", gateway.url)
    assert result.exit_code == 1
    assert result.stderr == f"error: {path}:2: 'answer' must be a non-empty string (missing)\n"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "alpha", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and result.stderr == "error: cannot reach the gateway at http://127.0.0.1:9\n"


def test_api_key_is_sent_and_a_wrong_one_is_one_line(make_gateway, tmp_path):
    served = make_gateway(api_keys="sesame")
    questions = str(write_questions(tmp_path))
    base = ["--questions", questions, "--arms", "alpha", "--base-url", served.url, "--out", str(tmp_path / "r")]
    wrong = run(*base, "--api-key", "wrong")
    assert wrong.exit_code == 1 and "refused the API key" in wrong.stderr
    assert run(*base, "--api-key", "sesame").exit_code == 0


def test_limit_asks_a_seeded_sample(gateway, tmp_path):
    out = tmp_path / "r"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "alpha", "--base-url", gateway.url,
                 "--limit", "4", "--seed", "7", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert len(report["questions"]) == 4 and len(gateway.engine.calls) == 4


def test_in_process_gateway_on_the_tiny_model(tiny_raw_dir, tiny_model_dir, tmp_path, monkeypatch):
    """Without --base-url the command serves the configured model itself (here with API keys set)."""
    for name, value in {
        "LORAG_BASE_MODEL": str(tiny_raw_dir), "LORAG_CACHE_DIR": str(tiny_model_dir.parents[1]),
        "LORAG_ENGINE": "local", "LORAG_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "LORAG_KB_DIR": str(tmp_path / "kbs"), "LORAG_REPORTS_DIR": str(tmp_path / "reports"),
        "LORAG_API_KEYS": "sesame",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    result = run("--questions", str(write_questions(tmp_path)), "--arms", str(tiny_raw_dir), "--limit", "2",
                 "--max-tokens", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    [folder] = (tmp_path / "reports").iterdir()
    report = json.loads((folder / "report.json").read_text())
    assert [row["arm"] for row in report["summary"]] == [str(tiny_raw_dir)]
    assert report["summary"][0]["errors"] == 0 and report["summary"][0]["completion_tokens"] > 0
