"""What a comparison found: per-arm means with confidence intervals, paired tests, worst disagreements.

Works on a :class:`~gateway.compare.runner.CompareResult` and returns plain JSON-ready data, which the
report files and ``GET /v1/compare/{id}`` show. A metric's per-question scores are NaN where an
answer failed (or the judge gave no verdict), so means count only scored answers and a paired
test uses only the questions both arms have a score for. ``judge`` appears when the run had a
judge, ``source_recall`` only for ``@kb`` arms (NaN, unknown, where the search for the sources
failed). Latency, prompt tokens and completion tokens are means over the answers that came back.
This module knows nothing about HTTP or file formats.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from gateway.compare.runner import CompareResult
from gateway.compare.scoring import METRICS
from gateway.compare.stats import mean_ci, paired_test

OPTIONAL_METRICS = ("judge", "reward", "source_recall")
LABELS = {
    "exact_match": "exact match",
    "f1": "token F1",
    "rouge_l": "ROUGE-L",
    "judge": "judge",
    "reward": "reward model",
    "source_recall": "answer in sources",
}


def scores_by_arm(result: CompareResult) -> dict[str, dict[str, np.ndarray]]:
    """``{arm: {metric: per-question scores in question order}}``, NaN where there is no score."""
    index = {question.id: i for i, question in enumerate(result.questions)}
    table: dict[str, dict[str, np.ndarray]] = {}
    for arm in result.config.arms:
        metrics = [*METRICS, *(m for m in OPTIONAL_METRICS if _has(result, arm, m))]
        table[arm] = {metric: np.full(len(index), np.nan) for metric in metrics}
    for answer in result.answers:
        for metric, values in table[answer.arm].items():
            value = answer.scores.get(metric)
            if value is not None:
                values[index[answer.question_id]] = value
    return table


def _has(result: CompareResult, arm: str, metric: str) -> bool:
    if metric == "judge":
        return result.config.judge_model is not None
    if metric == "reward":
        return result.config.reward_model is not None
    return any(answer.arm == arm and "source_recall" in answer.scores for answer in result.answers)


def summarize(result: CompareResult) -> list[dict]:
    """One row per arm: each metric's mean, ``ci`` {metric: [low, high]}, answers, errors, latency, tokens.

    A ``@kb`` arm also counts ``source_errors``: answers whose sources could not be checked."""
    rows = []
    for arm, metrics in scores_by_arm(result).items():
        answers = [a for a in result.answers if a.arm == arm]
        answered = [a for a in answers if a.error is None]
        row: dict = {"arm": arm, "answers": len(answers), "errors": len(answers) - len(answered)}
        ci = {}
        for metric, values in metrics.items():
            estimate = mean_ci(values, seed=result.config.seed)
            row[metric], ci[metric] = estimate.mean, [estimate.low, estimate.high]
        row["ci"] = ci
        if "judge" in metrics:
            row["judge_unparsed"] = sum(a.scores.get("judge") is None for a in answered)
        if "source_recall" in metrics:
            row["source_errors"] = sum(a.sources_error is not None for a in answered)
        row["latency_s"] = _mean([a.latency_s for a in answered])
        row["prompt_tokens"] = _mean([a.prompt_tokens for a in answered])
        row["completion_tokens"] = _mean([a.completion_tokens for a in answered])
        rows.append(row)
    return rows


def _mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def pairwise(result: CompareResult) -> list[dict]:
    """For every pair of arms and every metric both have: the paired difference (a - b) and its test."""
    table = scores_by_arm(result)
    rows = []
    for a, b in combinations(result.config.arms, 2):
        for metric in (m for m in (*METRICS, *OPTIONAL_METRICS) if m in table[a] and m in table[b]):
            test = paired_test(table[a][metric], table[b][metric], seed=result.config.seed)
            rows.append({"a": a, "b": b, "metric": metric, **test.as_dict()})
    return rows


def disagreements(result: CompareResult, metric: str = "f1") -> list[dict]:
    """Every question with each arm's answer, sorted by the spread of ``metric`` across arms, widest first.

    A question where an arm failed counts as fully disputed (spread 1), since the arms did not
    all answer it; ties keep the file order.
    """
    by_question: dict[str, dict] = {q.id: {} for q in result.questions}
    for answer in result.answers:
        by_question[answer.question_id][answer.arm] = answer
    rows = []
    for question in result.questions:
        answers = by_question[question.id]
        values = [answers[arm].scores.get(metric) for arm in result.config.arms if arm in answers]
        failed = any(answers[arm].error for arm in answers) or None in values
        spread = 1.0 if failed else max(values) - min(values)
        rows.append({"question": question, "answers": answers, "spread": spread})
    rows.sort(key=lambda row: -row["spread"])  # stable: ties stay in file order
    return rows
