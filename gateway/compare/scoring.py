"""Scores of one answer against its reference: exact match, token F1, ROUGE-L, answer in sources.

All pure functions on strings, each in [0, 1]. Text is normalised as in the SQuAD evaluation
script: lower case, punctuation removed, the articles a/an/the removed, whitespace collapsed;
citation markers such as ``[2]`` or ``[1, 3]`` are removed first, so an answer is not scored down
for citing its source.
Token F1 is SQuAD's: the harmonic mean of the precision and recall of the bag of shared tokens.
ROUGE-L is the F-measure (beta = 1) of the longest common subsequence of the normalised tokens
(Lin, 2004). :func:`answer_in_sources` says whether the normalised reference appears, as whole
tokens, in the normalised text of the retrieved chunks. This module knows nothing about models,
arms or statistics.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

METRICS = ("exact_match", "f1", "rouge_l")  # computed for every answer
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITATIONS = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "‘’“”–—…")


def normalize(text: str) -> str:
    """SQuAD normalisation after removing citation markers: lower case, no punctuation, no articles, single spaces."""
    text = _CITATIONS.sub(" ", text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both normalise to the same text."""
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1; two empty texts match (1.0), one empty text does not (0.0)."""
    predicted, wanted = tokens(prediction), tokens(reference)
    if not predicted or not wanted:
        return float(predicted == wanted)
    shared = sum((Counter(predicted) & Counter(wanted)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of normalised tokens over both lengths."""
    predicted, wanted = tokens(prediction), tokens(reference)
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = _lcs_length(predicted, wanted)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) time and O(len(b)) memory."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def answer_in_sources(reference: str, sources: Iterable[str]) -> float | None:
    """1.0 when the normalised reference occurs as whole tokens in the normalised sources; None if it is empty."""
    wanted = normalize(reference)
    if not wanted:
        return None
    return float(any(f" {wanted} " in f" {normalize(text)} " for text in sources))


def score(prediction: str, reference: str) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one answer."""
    return {
        "exact_match": exact_match(prediction, reference),
        "f1": token_f1(prediction, reference),
        "rouge_l": rouge_l(prediction, reference),
    }
