"""Question sets for ``lorag compare``: read them, check them, take a sample of them.

Two formats, told apart by the text itself:

- JSONL, one ``{"question", "answer"}`` object a line, with optional ``id`` (default: the line
  number) and ``context`` (a passage shown in the report next to the question, never sent to
  the models). Blank lines are skipped.
- A JSON list of documents in the QA format of Wiki-Newpages (``evidence_text``, ``page_title``,
  ``id`` and ``qa_pairs`` of ``{"text", "output"}``): one question per pair, its answer with the
  ``"\\nRef: <...>"`` suffix removed, its id ``<document id>-<pair index>``, its context the
  document's ``evidence_text``. A JSON list of plain ``{question, answer}`` objects works too.

A question repeated verbatim (same id, text, answer and context; the Wiki-Newpages files repeat
some documents) is read once; an id reused for a different question is an error. A bad row is
refused with one line that names the file and the line the row starts on
(:class:`QuestionsError`). :func:`sample` keeps a seeded random subset in file order. This
module knows nothing about models, HTTP or scoring.

The one reader of these files in lorag: ``lorag compare``, ``lorag kb raft-data`` and ``lorag
data build`` (:mod:`gateway.data.documents`) all read question sets here. :func:`read_rows`
gives the JSON objects of a JSONL file or JSON list with their line numbers, for any data file.
:func:`load_prompts` reads prompts without answers (``lorag pairs``): JSONL (or a JSON list) of
``{"prompt"}`` or ``{"question"}`` objects (a ``.jsonl`` or ``.json`` file, or any but ``.txt`` that
starts with ``{`` or ``[``), else plain text, one prompt a line.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

_REF_LINE = re.compile(r"^Ref:", re.MULTILINE)  # where the answer of a QA pair ends


class QuestionsError(ValueError):
    """A questions file that cannot be used; the message is one line naming the file (and line)."""


@dataclass(frozen=True)
class Question:
    """One question and its reference answer."""

    id: str  # unique within the set
    question: str
    answer: str  # the reference answer the arms are scored against
    context: str | None = None  # the passage the answer comes from, if the set has one (report only)


def load_questions(path: str | Path) -> list[Question]:
    """The questions of the file at ``path`` (JSONL or the Wiki-Newpages QA JSON)."""
    return parse_questions(_read_text(Path(path)), str(path))


def read_rows(path: str | Path) -> list[tuple[int, object]]:
    """The items of the JSONL file or JSON list at ``path``, each with the line it starts on."""
    return _rows(_read_text(Path(path)), str(path))


def load_prompts(path: str | Path) -> list[str]:
    """The prompts of the file at ``path``: one a line (``.txt``), or JSON rows with ``prompt`` or ``question``."""
    path = Path(path)
    text = _read_text(path, "prompts file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json") or suffix != ".txt" and text.lstrip().startswith(("{", "[")):
        prompts = [_prompt_of(row, f"{path}:{line}") for line, row in _rows(text, str(path))]
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise QuestionsError(f"{path}: no prompts")
    return prompts


def parse_questions(text: str, name: str) -> list[Question]:
    """The questions in ``text``, read from a file called ``name`` (used in error messages)."""
    rows = _rows(text, name)
    seen: dict[str, Question] = {}
    for line, row in rows:
        for question in _questions_of(row, name, line):
            if question.id not in seen:
                seen[question.id] = question
            elif seen[question.id] != question:
                raise QuestionsError(f"{name}:{line}: question id '{question.id}' appears twice, with other content")
    if not seen:
        raise QuestionsError(f"{name}: no questions")
    return list(seen.values())


def sample(questions: list[Question], limit: int | None, seed: int = 0) -> list[Question]:
    """``limit`` questions drawn at random with ``seed`` (all of them if None or more than there are), in file order."""
    if limit is None or limit >= len(questions):
        return list(questions)
    if limit < 1:
        raise QuestionsError(f"limit must be at least 1, got {limit}")
    keep = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[i] for i in keep]


def question_key(question: str) -> str:
    """What makes two questions the same when one file excludes another's: case and spacing ignored."""
    return " ".join(question.lower().split())


def _read_text(path: Path, what: str = "questions file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise QuestionsError(f"cannot read {what} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise QuestionsError(f"{path}: not UTF-8 text") from None


def _rows(text: str, name: str) -> list[tuple[int, object]]:
    return _json_rows(text, name) if text.lstrip().startswith("[") else _jsonl_rows(text, name)


def _jsonl_rows(text: str, name: str) -> list[tuple[int, object]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            raise QuestionsError(f"{name}:{number}: not valid JSON ({e.msg})") from None
    return rows


def _json_rows(text: str, name: str) -> list[tuple[int, object]]:
    """The items of a JSON list with the line each starts on."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise QuestionsError(f"{name}:{e.lineno}: not valid JSON ({e.msg})") from None
    decoder, rows, position = json.JSONDecoder(), [], text.index("[") + 1
    for item in items:
        while text[position] in " \t\r\n,":
            position += 1
        _, end = decoder.raw_decode(text, position)
        rows.append((text.count("\n", 0, position) + 1, item))
        position = end
    return rows


def _questions_of(row: object, name: str, line: int) -> list[Question]:
    where = f"{name}:{line}"
    if not isinstance(row, dict):
        raise QuestionsError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "qa_pairs" in row:
        return _qa_document(row, where)
    question, answer = _text(row, "question", where), _text(row, "answer", where)
    context = row.get("context")
    if context is not None and not isinstance(context, str):
        raise QuestionsError(f"{where}: 'context' must be a string")
    ident = row.get("id", line)
    if not isinstance(ident, str | int) or isinstance(ident, bool):
        raise QuestionsError(f"{where}: 'id' must be a string or an integer")
    return [Question(str(ident), question, answer, context)]


def _qa_document(row: dict, where: str) -> list[Question]:
    """The questions of one Wiki-Newpages document (the same rules as ``gateway.data.documents.read_qa_pairs``)."""
    pairs, ident = row["qa_pairs"], row.get("id")
    if not isinstance(pairs, list):
        raise QuestionsError(f"{where}: 'qa_pairs' must be a list")
    if not isinstance(ident, str | int) or isinstance(ident, bool):
        raise QuestionsError(f"{where}: a document with 'qa_pairs' needs a string 'id'")
    context = row.get("evidence_text") if isinstance(row.get("evidence_text"), str) else None
    questions = []
    for index, pair in enumerate(pairs):
        at = f"{where}: qa_pairs[{index}]"
        if not isinstance(pair, dict):
            raise QuestionsError(f"{at}: expected a JSON object")
        answer = _REF_LINE.split(_text(pair, "output", at), maxsplit=1)[0].strip()
        if not answer:
            raise QuestionsError(f"{at}: 'output' has no answer before its Ref line")
        questions.append(Question(f"{ident}-{index}", _text(pair, "text", at), answer, context))
    return questions


def _prompt_of(row: object, where: str) -> str:
    if not isinstance(row, dict):
        raise QuestionsError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return _text(row, "prompt" if "prompt" in row or "question" not in row else "question", where)


def _text(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        found = "missing" if key not in row else f"a {type(value).__name__}" if not isinstance(value, str) else "empty"
        raise QuestionsError(f"{where}: '{key}' must be a non-empty string ({found})")
    return value.strip()
