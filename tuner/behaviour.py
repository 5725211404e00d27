"""After training: did the adapter learn what it was taught, and keep everything else?

Two figures from greedy answers, written to ``lorag.json`` under ``behaviour``:
- **taught**: on the held-out eval conversations (phrasings never trained on; for preferences,
  the held-out prompts with their chosen answers), the share of answers that show the taught
  behaviour: they contain the recipe's ``behaviour_marker`` (say, the adapter's name), or without
  a marker, reach token F1 0.5 against the reference answer. The base model's answers, taken
  before training, are scored the same way beside them (``base_rate``, ``base_f1``), with the
  mean words of both.
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
CHAT_FORMATS = ("openai", "sharegpt", "alpaca")
MAX_TAUGHT = 32  # held-out conversations answered for the figures; eval loss covers every one
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


def before_training(model, tokenizer, taught: list[dict], max_tokens: int) -> list[str]:
    """The base model's answers to the held-out conversations, for :func:`behaviour` to score beside the adapter's."""
    prompts = [row["messages"][:-1] for row in taught[:MAX_TAUGHT]]
    return [a.text for a in greedy_answers(model, tokenizer, prompts, max_tokens, desc="behaviour: base answers")]


def behaviour(
    model, tokenizer, taught: list[dict], general: list[dict], marker: str | None, max_tokens: int,
    base_answers: list[str] | None = None,
) -> tuple[dict, list[dict]]:  # fmt: skip
    """The figures, and every answer they were computed from.

    ``taught``: conversations whose last message is the reference answer (the first :data:`MAX_TAUGHT` are asked);
    ``general``: ``{prompt, base_answer}``; ``base_answers``: :func:`before_training`'s, for ``taught``.
    """
    taught = taught[:MAX_TAUGHT]
    prompts = [row["messages"][:-1] for row in taught] + [[{"role": "user", "content": g["prompt"]}] for g in general]
    answers = [a.text for a in greedy_answers(model, tokenizer, prompts, max_tokens, desc="behaviour: adapter answers")]
    figures, examples = {}, []
    if taught:
        references = [row["messages"][-1]["content"] for row in taught]
        tuned = answers[: len(taught)]
        figures["taught"] = _taught(tuned, references, marker)
        if base_answers:
            base = _taught(base_answers, references, marker)
            figures["taught"] |= {"base_rate": base["rate"], "base_f1": base["f1"], "base_words": base["words"]}
        for i, (row, answer) in enumerate(zip(taught, tuned, strict=True)):
            example = {"kind": "taught", "prompt": _last_user(row), "reference": references[i], "answer": answer}
            examples.append(example | ({"base": base_answers[i]} if base_answers else {}))
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


def _taught(answers: list[str], references: list[str], marker: str | None) -> dict:
    f1s = [token_f1(answer, reference) for answer, reference in zip(answers, references, strict=True)]
    hits = [_shows(a, marker) for a in answers] if marker else [f1 >= TAUGHT_F1 for f1 in f1s]
    return {
        "rate": sum(hits) / len(hits),
        "f1": sum(f1s) / len(f1s),
        "words": sum(len(a.split()) for a in answers) / len(answers),
        "prompts": len(hits),
        "marker": marker,
    }


def _last_user(row: dict) -> str:
    return next(m["content"] for m in reversed(row["messages"][:-1]) if m["role"] == "user")
