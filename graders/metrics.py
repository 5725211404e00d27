"""The string and text-similarity graders' scores, each from a well-kept library.

``string_check``: ``eq`` and ``ne`` compare whole strings; ``like`` is 1 when the input contains the reference,
``ilike`` the same ignoring case. ``text_similarity``: ``fuzzy_match`` is rapidfuzz's ``fuzz.ratio`` / 100,
``bleu`` sacrebleu's sentence BLEU / 100, ``gleu`` and ``meteor`` nltk's sentence GLEU and METEOR (METEOR's
synonym stage needs nltk's WordNet data; without it METEOR matches exact words and Porter stems only),
``rouge_1`` ... ``rouge_5`` and ``rouge_l`` the F-measure of Google's rouge-score (with its stemmer), ``cosine``
the cosine of the two texts' embeddings from the ``embed`` function the caller gives. Every score is from 0 to 1.
This module knows nothing about templates or models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

Embed = Callable[[list[str]], list[list[float]]]
"""Texts -> their embedding vectors (lorag's embedder in the gateway, sentence-transformers in the tuner)."""


def string_check(text: str, reference: str, operation: str) -> float:
    checks = {
        "eq": lambda: text == reference,
        "ne": lambda: text != reference,
        "like": lambda: reference in text,
        "ilike": lambda: reference.casefold() in text.casefold(),
    }
    return 1.0 if checks[operation]() else 0.0


def similarity(text: str, reference: str, metric: str, embed: Embed | None = None) -> float:
    """``metric`` of ``text`` against ``reference``; ValueError for ``cosine`` without an embedder."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return fuzz.ratio(text, reference) / 100
    if metric == "bleu":
        import sacrebleu

        return sacrebleu.sentence_bleu(text, [reference]).score / 100
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu([reference.split()], text.split()))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score([reference.lower().split()], text.lower().split(), wordnet=_wordnet()))
    if metric.startswith("rouge_"):
        kind = "rougeL" if metric == "rouge_l" else f"rouge{metric.removeprefix('rouge_')}"
        return float(_rouge(kind).score(reference, text)[kind].fmeasure)
    if metric == "cosine":
        if embed is None:
            raise ValueError("cosine similarity needs an embedder, and none was given")
        a, b = embed([text, reference])
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        return max(0.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True)) / norm)) if norm else 0.0
    raise ValueError(f"unknown evaluation_metric '{metric}'")


@cache
def _rouge(kind: str):
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([kind], use_stemmer=True)


class _NoSynonyms:
    """WordNet's one method METEOR calls, answering no synonyms: what METEOR uses without WordNet's data."""

    @staticmethod
    def synsets(word, *args, **kwargs) -> list:
        return []


@cache
def _wordnet():
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return _NoSynonyms()
    return wordnet
