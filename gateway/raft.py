"""RAFT-style training data: questions with retrieved sources in the prompt, exactly as a RAG chat sends them.

``lorag kb raft-data KB QUESTIONS --out data.jsonl`` retrieves, for every training question, from
knowledge base ``KB`` with the retriever and defaults of a ``<model>@<kb>`` chat
(:data:`~gateway.knowledge.DEFAULT_TOP_K` sources, hybrid mode) and builds the prompt with
:func:`rag.augment.augment`, the function the gateway serves with, so an adapter trained on it
sees the prompts it will be served. As in RAFT (Zhang et al., 2024), a share of the examples
(``oracle_fraction``) is sure to hold the *gold* source, the chunk the answer comes from: if
retrieval missed it, it takes the last place; the other examples hold distractors only. The
assistant turn is the reference answer followed by the number of the gold source, e.g.
``February 16, 2002 [1]``; without the gold source it is the bare answer (RAFT's way of keeping
what the model memorised).

A chunk is gold when its text lies inside the question's ``context`` (the Wiki-Newpages
``evidence_text``; a JSONL questions file needs a ``context`` per question), after collapsing
white space. Rows are OpenAI-format ``{"messages": [...]}``, what ``lorag finetune`` trains on,
written one JSON object a line as ``tuner.documents.write_jsonl`` writes them (the gateway may
not import the tuner). ``--exclude`` drops a question that appears in another file, case and
spacing ignored (:func:`question_key`, the rule of ``python -m tuner build-data --exclude``).
This module knows nothing about engines, HTTP or training.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli_common import fail
from gateway.knowledge import DEFAULT_TOP_K, Retrieval
from gateway.questions import Question, QuestionsError, load_questions, sample
from gateway.settings import get_settings
from rag.augment import augment
from rag.retriever import Hit, retrieve
from rag.store import KnowledgeBase, KnowledgeBases


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
    top_k: int = DEFAULT_TOP_K,
    oracle_fraction: float = 0.8,
    seed: int = 0,
    shuffle: bool = False,
) -> tuple[list[dict], RaftReport]:
    """One chat per question whose context the knowledge base holds; see the module docstring. ``shuffle`` puts
    the sources in random order (retrieval ranks the gold source first so often that a model could learn to
    cite [1] without reading); the prompt then differs from the served one in the order of its sources only."""
    if not 0.0 <= oracle_fraction <= 1.0:
        raise ValueError(f"oracle_fraction must be between 0 and 1, got {oracle_fraction}")
    mode = Retrieval("").mode  # the chat default
    rng, report, rows = random.Random(seed), RaftReport(), []
    for question in questions:
        if not question.context:
            raise ValueError(f"question {question.id} has no context: RAFT needs it to tell the gold source")
        oracle = rng.random() < oracle_fraction
        hits = retrieve(kb, question.question, top_k=top_k, mode=mode)
        retrieved = any(is_gold(hit, question.context) for hit in hits)
        if oracle and not retrieved:
            gold = _gold_hit(kb, question.context, mode)
            if gold is None:
                report.gold_missing += 1
                continue
            hits = [*hits[: top_k - 1], gold]
        elif not oracle and retrieved:
            deeper = retrieve(kb, question.question, top_k=2 * top_k + 2, mode=mode)
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


def question_key(question: str) -> str:
    """What makes two questions the same for ``--exclude``: case and spacing ignored."""
    return " ".join(question.lower().split())


def _gold_hit(kb: KnowledgeBase, context: str, mode) -> Hit | None:
    """A chunk of the context's document, found by searching for the context itself."""
    return next((hit for hit in retrieve(kb, context, top_k=5, mode=mode) if is_gold(hit, context)), None)


def raft_data(
    kb: Annotated[str, typer.Argument(help="Knowledge base holding the training questions' documents.")],
    questions: Annotated[Path, typer.Argument(help="Training questions: Wiki-Newpages QA JSON or JSONL with context.")],
    out: Annotated[Path, typer.Option(help="JSONL file to write ({messages} rows for lorag finetune).")],
    top_k: Annotated[int, typer.Option(help="Sources per prompt (the chat default).")] = DEFAULT_TOP_K,
    oracle_fraction: Annotated[float, typer.Option(help="Share of examples sure to hold the gold source.")] = 0.8,
    limit: Annotated[int | None, typer.Option(help="Use a seeded random sample of this many questions.")] = None,
    exclude: Annotated[
        list[Path] | None, typer.Option(help="Drop questions that appear in this questions file (e.g. the test set).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the oracle draw.")] = 0,
    shuffle: Annotated[bool, typer.Option(help="Put the sources in random order (gold not always [1]).")] = False,
) -> None:
    """RAFT training data: retrieved sources in the prompt (as <model>@<kb> sends them), cited answers."""
    try:
        asked = load_questions(questions)
        banned = {question_key(q.question) for path in exclude or [] for q in load_questions(path)}
    except QuestionsError as e:
        fail(str(e))
    kept = [q for q in asked if question_key(q.question) not in banned]
    settings = get_settings()
    try:
        base = KnowledgeBases(settings.kb_dir, default_embedder=settings.embedder).get(kb)
    except Exception:  # noqa: BLE001 - rag raises NotFound or ValueError for a missing or bad name
        fail(f"no knowledge base named '{kb}' in {settings.kb_dir}")
    try:
        rows, report = raft_rows(base, sample(kept, limit, seed), top_k, oracle_fraction, seed, shuffle)
    except (ValueError, QuestionsError) as e:
        fail(str(e))
    report.excluded = len(asked) - len(kept)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    typer.echo(
        f"wrote {report.rows} rows to {out}: {report.with_gold} with the gold source ({report.gold_retrieved} found by "
        f"retrieval), {report.rows - report.with_gold} with distractors only; {report.gold_missing} questions "
        f"skipped (context not in {kb}), {report.excluded} excluded"
    )
