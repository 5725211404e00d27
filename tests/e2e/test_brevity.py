"""Preference learning on the embedded model, as a user runs it: DPO, and RLHF (a reward model, then GRPO).

Both families learn the same preference from the shipped brevity recipes: short, direct answers.
``lorag finetune tuner/configs/brevity-dpo.yaml`` learns it from pairs; ``brevity-reward.yaml``
learns a reward model from pairs and ``brevity-grpo.yaml`` samples answers, scores them with it
and updates the policy. A user sees the change on 8 questions no step trained on: the greedy
answers get shorter, and they stay right. About ten minutes on two CPU cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.fixture_cache import cached

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
LORAG = str(Path(sys.executable).parent / "lorag")
BREVITY = ROOT / "tuner" / "data" / "brevity"
HELD_OUT = [(row["question"], row["answer"]) for row in map(json.loads, (BREVITY / "held-out.jsonl").open())]


def finetune(recipe: str, work: Path, *overrides: str) -> Path:
    env = os.environ | {"LORAG_ADAPTERS_DIR": str(work / "adapters"), "LORAG_RUNS_DIR": str(work / "runs")}
    command = [LORAG, "finetune", str(ROOT / "tuner" / "configs" / recipe)]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, env=env, check=True)
    return work / "adapters" / Path(recipe).stem


def trained(name: str, model_dir: Path, work: Path, build) -> Path:
    """``work`` with the adapters ``build`` trains, from the fixture cache when nothing that makes them changed."""
    return cached(f"brevity-{name}", [name], model_dir, work, build)


def held_out_answers(model_dir: Path, adapter: Path | None) -> list[str]:
    """Greedy answers to the 8 held-out questions, with ``adapter`` or by the base model."""
    base = PreparedModel.read(model_dir)

    async def answers():
        engine = LocalEngine(model_dir, base.id)
        try:
            if adapter is not None:
                await engine.load_adapter(AdapterRegistry(adapter.parent, base.id, base.sha256,
                                                          engine.info.limits).check(adapter))  # fmt: skip
            greedy = SamplingParams(max_tokens=64, temperature=0)
            return [(await engine.generate([Message("user", q)], greedy, adapter and adapter.name)).text
                    for q, _ in HELD_OUT]  # fmt: skip
        finally:
            await engine.close()

    return asyncio.run(answers())


def mean_words(answers: list[str]) -> float:
    return sum(len(a.split()) for a in answers) / len(answers)


def right(answers: list[str]) -> int:
    return sum(expected in answer.lower() for answer, (_, expected) in zip(answers, HELD_OUT, strict=True))


def summary(before: list[str], after: list[str]) -> str:
    return (f"held-out answers: {mean_words(before):.1f} words, {right(before)}/8 right before; "
            f"{mean_words(after):.1f} words, {right(after)}/8 right after")  # fmt: skip


@pytest.fixture(scope="module")
def base_answers(embedded_model_dir) -> list[str]:
    return held_out_answers(embedded_model_dir, None)


def test_dpo_makes_held_out_answers_shorter_and_they_stay_right(embedded_model_dir, base_answers, tmp_path):
    work = trained("dpo", embedded_model_dir, tmp_path, lambda work: finetune("brevity-dpo.yaml", work))
    adapter = work / "adapters" / "brevity-dpo"
    metrics = json.loads((adapter / "lorag.json").read_text())["metrics"]
    assert metrics["preference_accuracy"] >= 0.75 and metrics["reward_margin"] > 0

    answers = held_out_answers(embedded_model_dir, adapter)
    print(summary(base_answers, answers), metrics)
    assert mean_words(answers) < 0.6 * mean_words(base_answers)
    assert right(answers) >= right(base_answers) - 1


def test_a_reward_model_then_grpo_make_held_out_answers_shorter_and_they_stay_right(
    embedded_model_dir, base_answers, tmp_path
):
    def rlhf(work: Path) -> None:
        scorer = finetune("brevity-reward.yaml", work)
        finetune("brevity-grpo.yaml", work, f"reward_model={scorer}")

    work = trained("rlhf", embedded_model_dir, tmp_path, rlhf)
    reward = json.loads((work / "adapters" / "brevity-reward" / "lorag.json").read_text())
    assert reward["kind"] == "reward_model" and reward["metrics"]["pairwise_accuracy"] >= 0.75

    policy = work / "adapters" / "brevity-grpo"
    metrics = json.loads((policy / "lorag.json").read_text())["metrics"]
    assert metrics["reward_after"] > metrics["reward_before"]

    answers = held_out_answers(embedded_model_dir, policy)
    print(summary(base_answers, answers), reward["metrics"], metrics)
    assert mean_words(answers) < mean_words(base_answers)
    assert right(answers) >= right(base_answers) - 1
