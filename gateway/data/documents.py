"""Training data from documents: continued-pretraining text and question/answer chats.

``lorag data build --documents DOCS --qa QA --out data.jsonl`` writes one JSONL file that the
tuner reads as its ``text`` format:

- every document is cut into chunks of about ``chunk_chars`` characters, ending at a sentence or
  word boundary, consecutive chunks sharing about ``overlap_chars``; each chunk is a
  ``{"text": ...}`` row (language modelling: this is how an adapter takes in new knowledge);
- every question/answer pair becomes a closed-book chat
  ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``.

Documents (``DOCS``): a folder of .txt/.md files, a JSONL file of ``{"text"}`` rows, or a
Wiki-Newpages QA file (a JSON list with ``evidence_text``), of which only the ``evidence_text``
is read, never its questions. QA pairs (``QA``): any question set :mod:`gateway.data.questions`
reads (the Wiki-Newpages QA format or JSONL of ``{question, answer}``), with its rules and its
one-line errors. Documents and questions are separate arguments, so a test split's documents
can be learned without its questions; ``--exclude FILE`` also drops any QA pair whose question
appears in ``FILE`` (e.g. the test split) and the command says how many it dropped. This module
knows nothing about tokenizers, models or HTTP.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from gateway.data.questions import QuestionsError, load_questions, question_key, read_rows

_SENTENCE_END = re.compile(r"[.!?]\s|\n")
TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class BuildReport:
    """What went into a training file, for the user to check."""

    documents: int = 0
    chunks: int = 0
    qa_pairs: int = 0
    excluded: int = 0  # QA pairs dropped because their question is in an excluded file
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.chunks} text chunks from {self.documents} documents, {self.qa_pairs} question/answer chats"
            f" ({self.excluded} excluded questions dropped); read {', '.join(self.sources)}"
        )


def chunk_text(text: str, chunk_chars: int = 800, overlap_chars: int = 100) -> list[str]:
    """``text`` in pieces of at most ``chunk_chars`` characters, ending at a sentence or word boundary near the end."""
    if chunk_chars < 1 or not 0 <= overlap_chars < chunk_chars:
        raise ValueError("chunk_chars must be positive and overlap_chars between 0 and chunk_chars")
    text = text.strip()
    chunks, start = [], 0
    while start < len(text):
        end = min(start + chunk_chars, len(text))
        if end < len(text):
            window = text[start:end]
            sentences = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > chunk_chars // 2]
            cut = sentences[-1] if sentences else window.rfind(" ") + 1
            end = start + cut if cut > chunk_chars // 2 else end
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        next_start = max(end - overlap_chars, start + 1)
        space = text.find(" ", next_start, end)
        start = space + 1 if overlap_chars and space != -1 else next_start
    return [chunk for chunk in chunks if chunk]


def read_documents(path: str | Path) -> list[str]:
    """The texts of a folder of .txt/.md files, a JSONL of ``{"text"}`` rows, or a QA file's ``evidence_text``s."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise QuestionsError(f"{path}: no .txt or .md files")
        return [f.read_text(encoding="utf-8") for f in files]
    texts, seen = [], set()
    for where, row in _rows(path):
        text = _document_text(path, where, row)
        if text not in seen:  # QA files repeat documents
            seen.add(text)
            texts.append(text)
    return texts


def read_qa_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(question, answer) pairs of a question set (:func:`gateway.data.questions.load_questions`), each once."""
    return list(dict.fromkeys((question.question, question.answer) for question in load_questions(path)))


def build_rows(
    documents: list[str | Path],
    qa: list[str | Path],
    exclude: list[str | Path] = (),
    chunk_chars: int = 800,
    overlap_chars: int = 100,
    max_qa: int | None = None,
    seed: int = 0,
) -> tuple[list[dict], BuildReport]:
    """Text rows for the documents' chunks, then chat rows for the QA pairs not excluded (a seeded sample of
    ``max_qa`` of them if set)."""
    report, rows = BuildReport(), []
    for source in documents:
        texts = read_documents(source)
        report.documents += len(texts)
        report.sources.append(f"documents {source}")
        for text in texts:
            rows += [{"text": chunk} for chunk in chunk_text(text, chunk_chars, overlap_chars)]
    report.chunks = len(rows)
    excluded = {question_key(question) for source in exclude for question, _ in read_qa_pairs(source)}
    pairs = []
    for source in qa:
        report.sources.append(f"questions {source}")
        for question, answer in read_qa_pairs(source):
            if question_key(question) in excluded:
                report.excluded += 1
            else:
                pairs.append((question, answer))
    if max_qa is not None and max_qa < len(pairs):
        pairs = [pairs[i] for i in sorted(random.Random(seed).sample(range(len(pairs)), max_qa))]
    for question, answer in pairs:
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    report.qa_pairs = len(pairs)
    if not rows:
        raise QuestionsError("no training rows: give --documents and/or --qa")
    return rows, report


def export_documents(path: str | Path, folder: str | Path) -> int:
    """Write each document of ``path`` as a .txt file in ``folder`` (named after its ``page_title`` if it has one,
    else numbered), e.g. to upload a QA file's documents to a knowledge base; the number written."""
    folder, written = Path(folder), set()
    folder.mkdir(parents=True, exist_ok=True)
    for where, row in _rows(Path(path)):
        text = _document_text(path, where, row)
        title = str(row.get("page_title") or f"document-{len(written) + 1}").removesuffix(" - Wikipedia")
        name = re.sub(r"[^\w().,' -]+", "_", title).strip()[:100] + ".txt"
        if name not in written:
            (folder / name).write_text(text, encoding="utf-8")
            written.add(name)
    return len(written)


def write_jsonl(rows: list[dict], out: str | Path) -> None:
    """One JSON object a line, UTF-8, the folder made if needed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _document_text(path: Path, line: int, row: dict) -> str:
    text = row.get("evidence_text", row.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise QuestionsError(f"{path}:{line}: a document needs a non-empty 'text' (or 'evidence_text')")
    return text


def _rows(path: Path) -> list[tuple[int, dict]]:
    rows = read_rows(path)
    if not rows:
        raise QuestionsError(f"{path}: no rows")
    for line, row in rows:
        if not isinstance(row, dict):
            raise QuestionsError(f"{path}:{line}: expected a JSON object, got {type(row).__name__}")
    return rows
