"""RLHF on the embedded model, as a user runs it: a reward model, then GRPO against it, from the shipped recipes.

``lorag finetune tuner/configs/brevity-reward.yaml`` learns from pairs that prefer a short answer;
``brevity-grpo.yaml`` then samples answers, scores them with that reward model and updates the
policy. A user sees the change on questions neither step trained on: the reward model ranks the
held-out pairs right, and the policy's greedy answers to the held-out prompts get shorter and
score higher. About six minutes on two CPU cores.
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

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
LORAG = str(Path(sys.executable).parent / "lorag")


def finetune(recipe: str, work: Path, *overrides: str) -> Path:
    env = os.environ | {"LORAG_ADAPTERS_DIR": str(work / "adapters"), "LORAG_RUNS_DIR": str(work / "runs")}
    command = [LORAG, "finetune", str(ROOT / "tuner" / "configs" / recipe)]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, env=env, check=True)
    return work / "adapters" / Path(recipe).stem


def mean_words(model_dir: Path, adapter: Path | None, prompts: list[str]) -> float:
    base = PreparedModel.read(model_dir)

    async def answers():
        engine = LocalEngine(model_dir, base.id)
        try:
            if adapter is not None:
                await engine.load_adapter(AdapterRegistry(adapter.parent, base.id, base.sha256,
                                                          engine.info.limits).check(adapter))  # fmt: skip
            greedy = SamplingParams(max_tokens=48, temperature=0)
            return [(await engine.generate([Message("user", p)], greedy, adapter and adapter.name)).text
                    for p in prompts]  # fmt: skip
        finally:
            await engine.close()

    texts = asyncio.run(answers())
    return sum(len(t.split()) for t in texts) / len(texts)


def test_a_reward_model_then_grpo_make_held_out_answers_shorter(embedded_model_dir, tmp_path):
    scorer = finetune("brevity-reward.yaml", tmp_path)
    reward = json.loads((scorer / "lorag.json").read_text())
    assert reward["kind"] == "reward_model" and reward["metrics"]["pairwise_accuracy"] >= 0.75

    policy = finetune("brevity-grpo.yaml", tmp_path, f"reward_model={scorer}")
    metrics = json.loads((policy / "lorag.json").read_text())["metrics"]
    assert metrics["reward_after"] > metrics["reward_before"]

    held_out = [json.loads(line)["prompt"] for line in (ROOT / "tuner/data/brevity/held-out-prompts.jsonl").open()]
    before, after = mean_words(embedded_model_dir, None, held_out), mean_words(embedded_model_dir, policy, held_out)
    print(f"held-out answers: {before:.1f} words before, {after:.1f} after; reward {metrics}")
    assert after < before
