"""``lorag data``: training data from documents and question sets, and ``lorag kb raft-data``.

``build`` writes continued-pretraining text and closed-book chats (:mod:`gateway.data.documents`),
``export-documents`` writes a QA file's documents as .txt files (to upload to a knowledge base),
``raft-data`` (under ``lorag kb``, since it reads a knowledge base) writes RAFT chats
(:mod:`gateway.data.raft`). Every file they write is what ``lorag finetune`` reads. A bad input
file is one line on stderr naming the file and line, and exit 1. This module knows nothing
about training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli import retrieval_options as options
from gateway.cli.common import fail
from gateway.data.documents import build_rows, export_documents, write_jsonl
from gateway.data.questions import QuestionsError, load_questions, question_key, sample
from gateway.data.raft import raft_rows
from gateway.knowledge.backends import open_bases
from gateway.settings import get_settings
from rag.errors import InvalidName, NotFound
from rag.query import DEFAULT_TOP_K

data_app = typer.Typer(help="Training data from documents and question sets.", no_args_is_help=True)


@data_app.command("build")
def build(
    out: Annotated[Path, typer.Option(help="JSONL file to write (text and chat rows, for lorag finetune).")],
    documents: Annotated[
        list[Path] | None,
        typer.Option(help="Folder of .txt/.md, JSONL of {text}, or a Wiki-Newpages QA file (its evidence_text only)."),
    ] = None,
    qa: Annotated[
        list[Path] | None, typer.Option(help="Question set (Wiki-Newpages QA or JSONL of {question, answer}).")
    ] = None,
    exclude: Annotated[
        list[Path] | None, typer.Option(help="Drop QA pairs whose question is in this file (e.g. the test split).")
    ] = None,
    chunk_chars: Annotated[int, typer.Option(help="Characters per text chunk.")] = 800,
    overlap_chars: Annotated[int, typer.Option(help="Characters shared by consecutive chunks.")] = 100,
    max_qa: Annotated[int | None, typer.Option(help="Use a seeded random sample of this many QA pairs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --max-qa sample.")] = 0,
) -> None:
    """Continued-pretraining text from documents and closed-book chats from question/answer pairs."""
    try:
        rows, report = build_rows(documents or [], qa or [], exclude or [], chunk_chars, overlap_chars, max_qa, seed)
    except (QuestionsError, ValueError, OSError) as e:
        fail(str(e))
    write_jsonl(rows, out)
    typer.echo(f"wrote {len(rows)} rows to {out}: {report.summary()}")


@data_app.command("export-documents")
def export(
    source: Annotated[Path, typer.Argument(help="Wiki-Newpages QA file or JSONL of {text}.")],
    folder: Annotated[Path, typer.Argument(help="Folder to write the .txt files to.")],
) -> None:
    """Write each document of a QA file as a .txt file, e.g. to upload them to a knowledge base."""
    try:
        count = export_documents(source, folder)
    except QuestionsError as e:
        fail(str(e))
    typer.echo(f"wrote {count} documents to {folder}")


def raft_data(
    kb: Annotated[str, typer.Argument(help="Knowledge base holding the training questions' documents.")],
    questions: Annotated[Path, typer.Argument(help="Training questions: Wiki-Newpages QA JSON or JSONL with context.")],
    out: Annotated[Path, typer.Option(help="JSONL file to write ({messages} rows for lorag finetune).")],
    top_k: options.TopK = DEFAULT_TOP_K,
    mode: options.Mode = "hybrid",
    min_score: options.MinScore = None,
    filters: options.Filters = None,
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
        base = open_bases(settings).get(kb)
    except (NotFound, InvalidName):
        fail(f"no knowledge base named '{kb}' in {settings.kb_dir}")
    try:
        retrieval = options.retrieval(kb, top_k, mode, min_score, filters).options()
        rows, report = raft_rows(base, sample(kept, limit, seed), retrieval, oracle_fraction, seed, shuffle)
    except (ValueError, QuestionsError) as e:
        fail(str(e))
    report.excluded = len(asked) - len(kept)
    write_jsonl(rows, out)
    typer.echo(
        f"wrote {report.rows} rows to {out}: {report.with_gold} with the gold source ({report.gold_retrieved} found by "
        f"retrieval), {report.rows - report.with_gold} with distractors only; {report.gold_missing} questions "
        f"skipped (context not in {kb}), {report.excluded} excluded"
    )
