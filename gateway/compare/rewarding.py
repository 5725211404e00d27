"""Reward-model scores of a comparison's answers: the optional metric ``reward``.

A reward model trained with ``method: reward`` (``serve.reward_models``) scores each answer to
its question in (0, 1): the chance it would be preferred over an answer that scores 0. The
conversation it reads is the run's system prompt, the question and the answer; a ``@kb`` arm's
sources are not shown to it, so it judges the answer as a user reads it. Failed answers get no
score. This module knows nothing about reports or HTTP.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.compare.runner import CompareError, CompareResult
from serve.reward_models import NotARewardModel, RewardModel


def reward_model_folder(name: str, adapters_dir: Path) -> Path:
    """The folder of the reward model ``name`` in ``adapters_dir`` (or at the path ``name``); CompareError if it is
    not a reward model."""
    folder = adapters_dir / name if "/" not in name else Path(name)
    try:
        kind = json.loads((folder / "lorag.json").read_text()).get("kind")
    except (OSError, ValueError):
        raise CompareError(f"no reward model '{name}' in {adapters_dir}: train one with method: reward") from None
    if kind != "reward_model":
        raise CompareError(f"'{name}' is not a reward model (its lorag.json kind is '{kind}')")
    return folder


async def add_rewards(result: CompareResult, folder: Path, cache_dir: Path) -> None:
    """Load the reward model in ``folder`` and score every answer that came back (``scores["reward"]``)."""
    try:
        model = await asyncio.to_thread(RewardModel.load, folder, cache_dir)
    except NotARewardModel as e:
        raise CompareError(str(e)) from None
    questions = {q.id: q.question for q in result.questions}
    system = [{"role": "system", "content": result.config.system}] if result.config.system else []
    answered = [a for a in result.answers if a.error is None]
    conversations = [
        [*system, {"role": "user", "content": questions[a.question_id]}, {"role": "assistant", "content": a.text}]
        for a in answered
    ]
    for answer, value in zip(answered, await asyncio.to_thread(model.scores, conversations), strict=True):
        answer.scores["reward"] = value
