"""After training: did the adapter learn what it was taught, and keep everything else?

Two figures from greedy answers, written to ``lorag.json`` under ``behaviour``:
- **taught**: on the held-out eval conversations (phrasings never trained on), the share of
  answers that show the taught behaviour: they contain the recipe's ``behaviour_marker`` (say,
  the adapter's name), or without a marker, reach token F1 0.5 against the reference answer.
- **kept**: on the held-out general prompts of the replay set, the mean token F1 of each adapter
  answer against the base model's own answer (1.0: unchanged), the share answered identically,
  and the share that show the marker where it does not belong.

Token F1 is SQuAD's (lower case, no punctuation or articles, bag of shared tokens), the metric
the gateway's compare reports use; the tuner keeps its own few lines because it never imports the
gateway. This module knows nothing of trainers or files.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from tuner.generation import greedy_answers

TAUGHT_F1 = 0.5  # without a marker, an answer this close to the reference shows the taught behaviour
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def token_f1(prediction: str, reference: str) -> float:
    predicted, wanted = _tokens(prediction), _tokens(reference)
    if not predicted or not wanted:
        return float(predicted == wanted)
    shared = sum((Counter(predicted) & Counter(wanted)).values())
    if not shared:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def _tokens(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def _shows(answer: str, marker: str | None) -> bool:
    return marker is not None and marker.lower() in answer.lower()


def behaviour(
    model, tokenizer, taught: list[dict], general: list[dict], marker: str | None, max_tokens: int
) -> tuple[dict, list[dict]]:
    """The figures, and every answer they were computed from.

    ``taught``: conversations whose last message is the reference answer; ``general``: ``{prompt, base_answer}``.
    """
    prompts = [row["messages"][:-1] for row in taught] + [[{"role": "user", "content": g["prompt"]}] for g in general]
    answers = [a.text for a in greedy_answers(model, tokenizer, prompts, max_tokens, desc="behaviour: adapter answers")]
    figures, examples = {}, []
    if taught:
        hits = []
        for row, answer in zip(taught, answers[: len(taught)], strict=True):
            reference = row["messages"][-1]["content"]
            f1 = token_f1(answer, reference)
            hits.append(_shows(answer, marker) if marker else f1 >= TAUGHT_F1)
            examples.append({"kind": "taught", "prompt": _last_user(row), "reference": reference, "answer": answer})
        figures["taught"] = {"rate": sum(hits) / len(hits), "prompts": len(hits), "marker": marker}
    if general:
        f1s, same, leaks = [], [], []
        for item, answer in zip(general, answers[len(taught) :], strict=True):
            f1s.append(token_f1(answer, item["base_answer"]))
            same.append(answer.strip() == item["base_answer"].strip())
            leaks.append(_shows(answer, marker))
            base = item["base_answer"]
            examples.append({"kind": "general", "prompt": item["prompt"], "base": base, "answer": answer})
        figures["kept"] = {
            "f1_vs_base": sum(f1s) / len(f1s),
            "identical": sum(same) / len(same),
            "marker_rate": sum(leaks) / len(leaks) if marker else None,
            "prompts": len(f1s),
        }
    return figures, examples


def _last_user(row: dict) -> str:
    return next(m["content"] for m in reversed(row["messages"][:-1]) if m["role"] == "user")
