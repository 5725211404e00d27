"""A reward model as one more compare metric: every answer scored by a ``method: reward`` model, API and CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.gateway.test_compare_api import QUESTIONS, wait


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir, tmp_path_factory) -> Path:
    """A reward model of the tiny model, trained two steps on pairs that prefer the short answer."""
    from tuner import reward
    from tuner.config import Recipe

    work = tmp_path_factory.mktemp("reward")
    pairs = [{"prompt": f"Question {i}?", "chosen": "Yes.", "rejected": "Well, it depends on many things."}
             for i in range(8)]  # fmt: skip
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    recipe = Recipe(name="short-rm", method="reward", dataset=str(work / "pairs.jsonl"), max_steps=2, batch_size=4)
    return reward.run(recipe, tiny_model_dir, work / "adapters", work / "runs")


def tuner_scores(folder: Path, model_dir: Path, conversations: list[list[dict]]) -> list[float]:
    """The same answers scored by the tuner's own loader (what GRPO trains against), through the logistic."""
    from transformers import AutoTokenizer

    from tuner.manifest import read_base_model
    from tuner.rewards import load_reward_model, model_reward

    model = load_reward_model(folder, model_dir, read_base_model(model_dir)["sha256"])
    score = model_reward(model, AutoTokenizer.from_pretrained(model_dir))
    logits = score([c[:-1] for c in conversations], [c[-1:] for c in conversations])
    return [1 / (1 + math.exp(-x)) for x in logits]


def test_every_answer_gets_the_reward_models_score(make_gateway, reward_model, tiny_model_dir, tmp_path):
    import shutil

    gateway = make_gateway(reports_dir=tmp_path / "reports", cache_dir=tiny_model_dir.parent.parent)
    shutil.copytree(reward_model, gateway.adapters_dir / "short-rm")
    http = gateway.http()
    body = {"arms": ["fake-base", "alpha"], "questions": QUESTIONS[:3], "reward_model": "short-rm"}
    run = wait(http, http.post("/v1/compare", json=body).json()["id"], timeout_s=120)
    assert run["status"] == "completed", run
    assert all(0 < row["reward"] < 1 for row in run["summary"])
    report = http.get(f"/v1/compare/{run['id']}/report.json").json()
    assert report["config"]["reward_model"] == "short-rm"
    questions = {q["id"]: q["question"] for q in report["questions"]}
    conversations = [[{"role": "user", "content": questions[a["question_id"]]},
                      {"role": "assistant", "content": a["text"]}] for a in report["answers"]]  # fmt: skip
    expected = tuner_scores(reward_model, tiny_model_dir, conversations)
    assert [a["scores"]["reward"] for a in report["answers"]] == pytest.approx(expected, abs=1e-5)
    assert "reward model" in http.get(f"/v1/compare/{run['id']}/report.md").text


@pytest.mark.parametrize(("name", "message"), [("nope", "no reward model"), ("alpha", "not a reward model"),
                                               ("/etc/x", "not a path")])  # fmt: skip
def test_a_name_that_is_no_reward_model_is_400(make_gateway, tmp_path, name, message):
    http = make_gateway(reports_dir=tmp_path / "reports").http()
    refused = http.post("/v1/compare", json={"arms": ["fake-base"], "questions": QUESTIONS[:1], "reward_model": name})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "reward_model"
    assert message in refused.json()["error"]["message"]


def test_lorag_compare_takes_a_reward_model_path(gateway, reward_model, tiny_model_dir, tmp_path, monkeypatch):
    from tests.gateway.test_compare_cli import run, write_questions

    monkeypatch.setenv("LORAG_CACHE_DIR", str(tiny_model_dir.parent.parent))
    out = tmp_path / "report"
    result = run("--questions", str(write_questions(tmp_path)), "--arms", "fake-base,alpha", "--base-url", gateway.url,
                 "--out", str(out), "--reward-model", str(reward_model))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reward model" in result.output
    answers = json.loads((out / "report.json").read_text())["answers"]
    assert all(0 < a["scores"]["reward"] < 1 for a in answers)
    missing = run("--questions", str(write_questions(tmp_path)), "--arms", "alpha", "--base-url", gateway.url,
                  "--reward-model", "no-such-rm")  # fmt: skip
    assert missing.exit_code != 0 and "no reward model 'no-such-rm'" in missing.output
