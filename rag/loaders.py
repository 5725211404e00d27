"""Turn the bytes of an uploaded file into Documents: plain text plus segments that cite into it.

A segment is a span `[start, end)` of the document text that lies on one PDF page or under one
heading trail ("Guide > Install"), so every chunk cut inside it can be cited with page/section
and character offsets. Supported: .txt .md .html/.htm .pdf .docx .json .jsonl. A JSON file holds
one record or a list of them, a .jsonl file one record a line; each record becomes its own
Document whose text is `record[text_field]` and whose other fields become metadata.

Errors: `UnsupportedFileType` for an extension not listed (HTTP 415 upstream), `UnreadableDocument`
for a corrupt or encrypted file or one without text (HTTP 400); both name the file. This module
knows nothing about chunking, embeddings or storage.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from rag.errors import LoaderError, UnreadableDocument, UnsupportedFileType

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl")
_BLOCK_SEPARATOR = "\n\n"
_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_MARKDOWN_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_MAX_FILENAME = 255


@dataclass(frozen=True)
class Segment:
    """A span of the document text on one page or under one heading trail."""

    start: int
    end: int
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Document:
    """Text extracted from one file (or one JSON record), ready to be split."""

    name: str
    text: str
    segments: tuple[Segment, ...]
    sha256: str
    size: int
    metadata: dict[str, Any] = field(default_factory=dict)


def sanitize_filename(filename: str) -> str:
    """Keep the last path component, drop control characters; raise LoaderError if nothing is left."""
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        raise LoaderError(f"invalid filename {filename!r}")
    return name[-_MAX_FILENAME:]


def load_document(filename: str, data: bytes, *, text_field: str = "text") -> list[Document]:
    """Parse `data` according to the extension of `filename`; JSON files may give many Documents."""
    name = sanitize_filename(filename)
    extension = PurePath(name).suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(SUPPORTED_EXTENSIONS)
        raise UnsupportedFileType(f"{name}: unsupported file type {extension or '(none)'!r}; use {supported}")
    if extension in (".json", ".jsonl"):
        return _load_records(name, data, text_field, lines=extension == ".jsonl")
    if extension == ".pdf":
        text, segments = _read_pdf(name, data)
    elif extension == ".docx":
        text, segments = _read_docx(name, data)
    elif extension in (".html", ".htm"):
        text, segments = _read_html(_decode(data))
    elif extension in (".md", ".markdown"):
        text, segments = _read_markdown(_decode(data))
    else:
        text = _decode(data)
        segments = [Segment(0, len(text))]
    return [_document(name, text, segments, data)]


def _document(
    name: str, text: str, segments: list[Segment], raw: bytes, metadata: dict[str, Any] | None = None
) -> Document:
    kept = tuple(s for s in segments if text[s.start : s.end].strip())
    if not kept:
        raise UnreadableDocument(f"{name}: no text found")
    digest = hashlib.sha256(raw).hexdigest()
    return Document(name, text, kept, digest, len(raw), metadata or {})


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _Builder:
    """Joins text blocks into one document text, opening a segment per page or heading trail."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.segments: list[Segment] = []
        self.trail: list[tuple[int, str]] = []

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        while self.trail and self.trail[-1][0] >= level:
            self.trail.pop()
        self.trail.append((level, title))
        self.add(title)

    def add(self, block: str, page: int | None = None) -> None:
        block = block.strip()
        if not block:
            return
        if self.parts:
            self.parts.append(_BLOCK_SEPARATOR)
            self.length += len(_BLOCK_SEPARATOR)
        start = self.length
        self.parts.append(block)
        self.length += len(block)
        section = " > ".join(title for _, title in self.trail) or None
        last = self.segments[-1] if self.segments else None
        if last is not None and (last.page, last.section) == (page, section):
            self.segments[-1] = Segment(last.start, self.length, page, section)
        else:
            self.segments.append(Segment(start, self.length, page, section))

    def build(self) -> tuple[str, list[Segment]]:
        return "".join(self.parts), self.segments


def _read_markdown(text: str) -> tuple[str, list[Segment]]:
    """Keep the Markdown source as the text; open a segment at each ATX heading outside code fences."""
    segments: list[Segment] = []
    trail: list[tuple[int, str]] = []
    section_start, position, fence = 0, 0, None
    for line in text.splitlines(keepends=True):
        fence_match = _MARKDOWN_FENCE.match(line)
        if fence_match and fence in (None, fence_match.group(1)):
            fence = None if fence else fence_match.group(1)
        heading = None if fence else _MARKDOWN_HEADING.match(line.rstrip("\n"))
        if heading:
            section = " > ".join(title for _, title in trail) or None
            segments.append(Segment(section_start, position, section=section))
            level = len(heading.group(1))
            trail = [entry for entry in trail if entry[0] < level] + [(level, heading.group(2).strip())]
            section_start = position
        position += len(line)
    section = " > ".join(title for _, title in trail) or None
    segments.append(Segment(section_start, position, section=section))
    return text, segments


class _HTMLText(HTMLParser):
    _SKIPPED = frozenset("script style head noscript template svg".split())
    _BLOCKS = frozenset(
        "p div br li tr td th pre blockquote section article header footer table ul ol dl dt dd hr figcaption".split()
    )
    _HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _Builder()
        self.buffer: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self.skipping += 1
        elif tag in self._BLOCKS or tag in self._HEADINGS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._HEADINGS:
            self.builder.heading(self._HEADINGS[tag], " ".join(self.buffer))
            self.buffer.clear()
        elif tag in self._BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.buffer.append(data)

    def flush(self) -> None:
        self.builder.add(" ".join("".join(self.buffer).split()))
        self.buffer.clear()


def _read_html(markup: str) -> tuple[str, list[Segment]]:
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    parser.flush()
    return parser.builder.build()


def _read_pdf(name: str, data: bytes) -> tuple[str, list[Segment]]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument(f"{name}: the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        raise UnreadableDocument(f"{name}: not a readable PDF ({error})") from error
    builder = _Builder()
    for number, page_text in enumerate(pages, start=1):
        builder.add(page_text, page=number)
    return builder.build()


def _read_docx(name: str, data: bytes) -> tuple[str, list[Segment]]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as error:  # python-docx raises zipfile, lxml and KeyError failures alike
        raise UnreadableDocument(f"{name}: not a readable .docx ({error})") from error
    builder = _Builder()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                builder.add(" | ".join(cell.text.strip() for cell in row.cells))
            continue
        style = block.style.name if block.style is not None else ""
        level = _docx_heading_level(style)
        if level is None:
            builder.add(block.text)
        else:
            builder.heading(level, block.text)
    return builder.build()


def _docx_heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else None


def _load_records(name: str, data: bytes, text_field: str, *, lines: bool) -> list[Document]:
    text = _decode(data)
    try:
        if lines:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            parsed = json.loads(text)
            records = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError as error:
        raise UnreadableDocument(f"{name}: invalid JSON ({error})") from error
    if not records:
        raise UnreadableDocument(f"{name}: no records found")
    documents = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise UnreadableDocument(f"{name}: record {number} has no string field {text_field!r}")
        body = record[text_field].replace("\r\n", "\n")
        metadata = {key: value for key, value in record.items() if key != text_field}
        raw = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")
        try:
            documents.append(_document(name, body, [Segment(0, len(body))], raw, metadata))
        except UnreadableDocument as error:
            raise UnreadableDocument(f"{name}: record {number} has no text") from error
    return documents
