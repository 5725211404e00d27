"""RAFT-style training data: questions with retrieved sources in the prompt, exactly as a RAG chat sends them.

``lorag kb raft-data KB QUESTIONS --out data.jsonl`` retrieves, for every training question, from
knowledge base ``KB`` with the retriever and defaults of a ``<model>@<kb>`` chat
(``rag.query.RetrievalOptions``: 4 sources, hybrid mode, unless the options say otherwise) and builds the prompt with
:func:`rag.augment.augment`, the function the gateway serves with, so an adapter trained on it
sees the prompts it will be served. As in RAFT (Zhang et al., 2024), a share of the examples
(``oracle_fraction``) is sure to hold the *gold* source, the chunk the answer comes from: if
retrieval missed it, it takes the last place; the other examples hold distractors only. The
assistant turn is the reference answer followed by the number of the gold source, e.g.
``February 16, 2002 [1]``; without the gold source it is the bare answer (RAFT's way of keeping
what the model memorised).

A chunk is gold when its text lies inside the question's ``context`` (the Wiki-Newpages
``evidence_text``; a JSONL questions file needs a ``context`` per question), after collapsing
white space. Rows are OpenAI-format ``{"messages": [...]}``, what ``lorag finetune`` trains on. This module
knows nothing about engines, HTTP, training or the command line (``gateway.cli.data``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.data.questions import Question
from rag.augment import augment
from rag.query import RetrievalOptions
from rag.retriever import Hit, retrieve
from rag.store import KnowledgeBase


@dataclass
class RaftReport:
    """What went into a RAFT file."""

    rows: int = 0
    with_gold: int = 0  # rows whose sources hold the gold chunk (retrieved or inserted)
    gold_retrieved: int = 0  # ... of which retrieval found it on its own
    gold_missing: int = 0  # questions skipped: the knowledge base has no chunk of their context
    excluded: int = 0  # questions dropped because they are in an excluded file


def raft_rows(
    kb: KnowledgeBase,
    questions: list[Question],
    options: RetrievalOptions | None = None,
    oracle_fraction: float = 0.8,
    seed: int = 0,
    shuffle: bool = False,
) -> tuple[list[dict], RaftReport]:
    """One chat per question whose context the knowledge base holds; see the module docstring. ``shuffle`` puts
    the sources in random order (retrieval ranks the gold source first so often that a model could learn to
    cite [1] without reading); the prompt then differs from the served one in the order of its sources only."""
    if not 0.0 <= oracle_fraction <= 1.0:
        raise ValueError(f"oracle_fraction must be between 0 and 1, got {oracle_fraction}")
    options = options or RetrievalOptions()
    top_k = options.top_k
    rng, report, rows = random.Random(seed), RaftReport(), []
    for question in questions:
        if not question.context:
            raise ValueError(f"question {question.id} has no context: RAFT needs it to tell the gold source")
        oracle = rng.random() < oracle_fraction
        hits = retrieve(kb, question.question, options)
        retrieved = any(is_gold(hit, question.context) for hit in hits)
        if oracle and not retrieved:
            gold = _gold_hit(kb, question.context)
            if gold is None:
                report.gold_missing += 1
                continue
            hits = [*hits[: top_k - 1], gold]
        elif not oracle and retrieved:
            deeper = retrieve(kb, question.question, options, depth=2 * top_k + 2)
            hits = [hit for hit in deeper if not is_gold(hit, question.context)][:top_k]
        if shuffle:
            hits = rng.sample(hits, len(hits))
        messages, citations = augment([{"role": "user", "content": question.question}], hits)
        numbers = [c.index for c, hit in zip(citations, hits, strict=True) if is_gold(hit, question.context)]
        answer = f"{question.answer.rstrip('. ')} [{numbers[0]}]" if numbers else question.answer
        rows.append({"messages": [*messages, {"role": "assistant", "content": answer}]})
        report.rows += 1
        report.with_gold += bool(numbers)
        report.gold_retrieved += bool(numbers) and retrieved
    return rows, report


def is_gold(hit: Hit, context: str) -> bool:
    """Whether the chunk's text is part of the question's context."""
    text = " ".join(hit.text.split())
    return bool(text) and text in " ".join(context.split())


def _gold_hit(kb: KnowledgeBase, context: str) -> Hit | None:
    """A chunk of the context's document, found by searching for the context itself."""
    return next((hit for hit in retrieve(kb, context, top_k=5) if is_gold(hit, context)), None)
