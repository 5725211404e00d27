"""``lorag pairs``: sampled answers ranked by a judge into chosen/rejected rows, on fake engines and stub clients.

The sampling gateway's fake engine answers ``answer <seed> to <prompt>``, so the k choices of one
request differ (the gateway gives each choice its own seed); the judge's fake engine reads the
numbered answers out of its prompt and calls the one with the highest seed best, the lowest worst.
"""

from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace

import httpx
import openai
import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.compare.judge import Judge
from gateway.compare.ranking import Ranker, parse_ranking
from gateway.data.pairs import PairsConfig, Ranking, build_pairs
from gateway.data.questions import QuestionsError, load_prompts
from tests.fakes.fake_engine import FakeEngine

PROMPTS = ["Name a colour.", "Give a constant.", "Tell me a riddle.", "Say hello."]
_ANSWER = re.compile(r"Answer (\d+):\nanswer (\d+) to ")


def sampler(messages, params, adapter) -> str:
    """A model whose answer depends on the seed, except to 'Give a constant.'"""
    prompt = messages[-1].content
    return "always the same" if "constant" in prompt else f"answer {params.seed} to {prompt}"


def judge_reply(messages, params, adapter) -> str:
    """A judge that prefers higher seeds and cannot make up its mind about riddles."""
    prompt = next(m.content for m in messages if m.role == "user")
    if "riddle" in prompt:
        return "Both answers are lovely and I would not want to choose."
    seeds = {int(number): int(seed) for number, seed in _ANSWER.findall(prompt)}
    best, worst = max(seeds, key=seeds.get), min(seeds, key=seeds.get)
    return json.dumps({"best": best, "worst": worst, "reason": "the higher seed is the better answer"})


def write_prompts(folder, prompts=PROMPTS):
    path = folder / "prompts.txt"
    path.write_text("".join(f"{p}\n" for p in prompts))
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["pairs", *args])


def test_pairs_are_the_judges_best_and_worst_and_skips_are_counted(make_gateway, tmp_path):
    served, judge = make_gateway(FakeEngine(reply=sampler)), make_gateway(FakeEngine("judge", reply=judge_reply))
    out = tmp_path / "pairs.jsonl"
    result = run(str(write_prompts(tmp_path)), "--out", str(out), "--model", "fake-base", "--base-url", served.url,
                 "-k", "3", "--seed", "10", "--judge-model", "judge",
                 "--judge-base-url", f"{judge.url}/v1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"wrote 2 pairs to {out}: 2 of 4 prompts; skipped 1 with identical samples, "
        "1 with no distinct best and worst in the judge's reply, 0 with a failed request"
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row, index in zip(rows, (0, 3), strict=True):  # prompt i is sampled with seeds 10 + 3i, 10 + 3i + 1, ...
        prompt, first = PROMPTS[index], 10 + 3 * index
        assert row == {
            "prompt": prompt, "chosen": f"answer {first + 2} to {prompt}", "rejected": f"answer {first} to {prompt}",
            "reason": "the higher seed is the better answer", "judge": "judge", "samples": 3,
        }  # fmt: skip
    sampled = [params for _, params, _ in served.engine.calls]
    assert len(sampled) == 12 and {p.temperature for p in sampled} == {0.8}
    assert sorted(p.seed for p in sampled) == list(range(10, 22))
    judged = [params for _, params, _ in judge.engine.calls]
    assert len(judged) == 3 and all(p.temperature == 0 for p in judged)  # the constant prompt never reaches the judge
    for schema in (json.loads(p.json_schema) for p in judged):  # two different answers of the three
        picks = [(case["properties"]["best"]["const"], case["properties"]["worst"]["enum"]) for case in schema["anyOf"]]
        assert picks == [(1, [2, 3]), (2, [1, 3]), (3, [1, 2])]


def test_the_judge_defaults_to_the_sampled_model_at_the_same_endpoint(make_gateway, tmp_path):
    def both(messages, params, adapter):
        return judge_reply(messages, params, adapter) if params.json_schema else sampler(messages, params, adapter)

    served = make_gateway(FakeEngine(reply=both))
    out = tmp_path / "pairs.jsonl"
    result = run(str(write_prompts(tmp_path, ["Say hello."])), "--out", str(out), "--model", "alpha",
                 "--base-url", served.url, "--concurrency", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["judge"] == "alpha" and row["samples"] == 4
    assert row["chosen"] == "answer 3 to Say hello." and row["rejected"] == "answer 0 to Say hello."
    assert {adapter for _, _, adapter in served.engine.calls} == {"alpha"}
    (judged,) = [messages[-1].content for messages, params, _ in served.engine.calls if params.json_schema]
    assert "Decide which answer is the best (the most helpful, correct and honest) and which is the worst." in judged


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("p.jsonl", '{"prompt": "ok"}\n{"text": "?"}\n', "p.jsonl:2: 'prompt' must be a non-empty string (missing)"),
        ("p.jsonl", '{"question": "ok"}\n\nnot json\n', "p.jsonl:3: not valid JSON"),
        ("p.jsonl", '{"prompt": "ok"}\n["a list"]\n', "p.jsonl:2: expected a JSON object, got list"),
        ("p.txt", "\n  \n", "p.txt: no prompts"),
    ],
)
def test_a_bad_prompts_file_is_one_line_naming_the_row(gateway, tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    result = run(str(path), "--out", str(tmp_path / "o.jsonl"), "--model", "fake-base", "--base-url", gateway.url)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {tmp_path / message}")
    assert gateway.engine.calls == [] and not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "nope"], "unknown model 'nope' at http://127.0.0.1:"),
        (["--model", "alpha", "--judge-model", "gpt-5"], "unknown judge model 'gpt-5' at http://127.0.0.1:"),
        (["--model", "alpha", "-k", "1"], "a pair needs at least 2 samples per prompt"),
        (["--model", "alpha", "--prefer", "  "], "--prefer must say what makes an answer the best"),
    ],
)
def test_unknown_models_and_bad_options_fail_before_any_sample(gateway, tmp_path, extra, message):
    result = run(str(write_prompts(tmp_path)), "--out", str(tmp_path / "o.jsonl"), "--base-url", gateway.url, *extra)
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {message}"), result.output
    assert gateway.engine.calls == []


def test_prompts_come_from_text_jsonl_or_a_json_list(tmp_path):
    (tmp_path / "a.txt").write_text("{not json, a prompt}\n\nSecond one.  \n")
    (tmp_path / "b.jsonl").write_text('{"prompt": "One?"}\n{"question": "Two?", "answer": "ignored"}\n')
    (tmp_path / "c.json").write_text('[{"question": "Three?"}]')
    assert load_prompts(tmp_path / "a.txt") == ["{not json, a prompt}", "Second one."]
    assert load_prompts(tmp_path / "b.jsonl") == ["One?", "Two?"]
    assert load_prompts(tmp_path / "c.json") == ["Three?"]
    with pytest.raises(QuestionsError, match="cannot read prompts file"):
        load_prompts(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"best": 2, "worst": 1, "reason": "Clearer."}', Ranking(1, 0, "Clearer.", "")),
        ('Sure! ```json\n{"best": "3", "worst": 2, "reason": "x"}\n```', Ranking(2, 1, "x", "")),
        ("Best: Answer 3. Worst: answer 1.\nReason: it is wrong.", Ranking(2, 0, "it is wrong.", "")),
        ('{"best": 2, "reason": "cut off here', None),  # truncated before "worst"
        ('{"best": 2, "worst": 2, "reason": "same"}', None),
        ('{"best": 4, "worst": 1, "reason": "no answer 4"}', None),
        ('{"best": true, "worst": 1, "reason": "a bool is no number"}', None),
        ("I cannot decide.", None),
    ],
)
def test_parse_ranking_reads_json_or_words_and_never_guesses(reply, expected):
    ranking = parse_ranking(reply, 3)
    assert ranking.raw == reply
    if expected is None:
        assert ranking.best is None and ranking.worst is None
    else:
        assert (ranking.best, ranking.worst, ranking.reason) == (expected.best, expected.worst, expected.reason)


class StubCompletions:
    """``chat.completions`` of a judge endpoint that refuses any response_format with a 400."""

    def __init__(self, reply: str):
        self.reply, self.calls = reply, []

    async def create(self, **kwargs):
        self.calls.append(kwargs)
        if "response_format" in kwargs:
            refused = httpx.Response(400, request=httpx.Request("POST", "http://judge/v1/chat/completions"))
            raise openai.BadRequestError("response_format is not supported", response=refused, body=None)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=self.reply))])


def test_a_judge_without_json_schema_outputs_is_asked_in_text():
    completions = StubCompletions("The best is 1 and the worst is 2. Reason: it answers.")
    ranker = Ranker(Judge(SimpleNamespace(chat=SimpleNamespace(completions=completions)), "old-judge"))
    first = asyncio.run(ranker("Q?", ["good", "bad"]))
    assert (first.best, first.worst, first.reason) == (0, 1, "it answers.") and not ranker.structured
    asyncio.run(ranker("Q2?", ["good", "bad"]))
    assert ["response_format" in call for call in completions.calls] == [True, False, False]
    assert "Answer 1:\ngood\n\nAnswer 2:\nbad" in completions.calls[0]["messages"][0]["content"]


def test_prefer_tells_the_judge_what_makes_an_answer_the_best(make_gateway, tmp_path):
    def shortest_when_asked(messages, params, adapter):
        prompt = next(m.content for m in messages if m.role == "user")
        if not params.json_schema:
            return "Hi." if params.seed % 2 else f"Hello there, answer {params.seed}, how nice to meet you."
        if "the best (the shortest answer that is still correct)" not in prompt:
            return "no ranking without the principle"
        lengths = {int(n): len(a) for n, a in re.findall(r"Answer (\d+):\n(.*)", prompt)}
        shortest, longest = min(lengths, key=lengths.get), max(lengths, key=lengths.get)
        return json.dumps({"best": shortest, "worst": longest, "reason": "short"})

    served, out = make_gateway(FakeEngine(reply=shortest_when_asked)), tmp_path / "pairs.jsonl"
    result = run(str(write_prompts(tmp_path, ["Say hello."])), "--out", str(out), "--model", "alpha", "-k", "2",
                 "--base-url", served.url, "--prefer", "the shortest  answer that is still correct")  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["chosen"] == "Hi." and row["rejected"].startswith("Hello there")


def test_failed_requests_are_counted_and_concurrency_is_bounded():
    in_flight, most = 0, 0

    async def create(**kwargs):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if kwargs["messages"][0]["content"] == "boom":
            raise RuntimeError("the model fell over")
        choices = [SimpleNamespace(message=SimpleNamespace(content=f"a{kwargs['seed']}"))]  # one choice per request
        return SimpleNamespace(choices=choices)

    async def rank(prompt, answers):
        return Ranking(0, len(answers) - 1, "first beats last", "")

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    config = PairsConfig("m", samples=3, concurrency=2)
    rows, report = asyncio.run(build_pairs(client, ["p0", "boom", "p2", "p3", "p4"], config, rank, "j"))
    assert most == 2 and [row["prompt"] for row in rows] == ["p0", "p2", "p3", "p4"]
    assert (report.pairs, report.failed, report.first_error) == (4, 1, "RuntimeError: the model fell over")
    assert all({row["chosen"], row["rejected"]} <= {f"a{s}" for s in range(15)} for row in rows)
    assert all(row["chosen"] != row["rejected"] for row in rows)
