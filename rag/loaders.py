"""Turn the bytes of an uploaded file into Documents: plain text plus segments that cite into it.

A segment is a span `[start, end)` of the document text that lies on one PDF page or under one
heading trail ("Guide > Install"), so every chunk cut inside it can be cited with page/section
and character offsets. Supported: .txt .md .html/.htm .pdf .docx .json .jsonl. A JSON file holds
one record or a list of them, a .jsonl file one record a line; each record becomes its own
Document whose text is `record[text_field]` and whose other fields become metadata.

Text is decoded by its byte-order mark (UTF-8, UTF-16, UTF-32), as UTF-16 when every other
byte is NUL, else as UTF-8 with each invalid byte replaced; a file with over 1% unreadable
characters is refused rather than stored as mojibake. PDF and DOCX are read by
`rag.office_files`, bounded by `Limits`, which bound the text of every file too.

Errors (`rag.errors`, each naming the file): `UnsupportedFileType` for an extension not listed
(HTTP 415 upstream), `UnreadableDocument` for a corrupt file, a PDF that needs a password, text
in an unknown encoding or a file without text (HTTP 400), `DocumentTooLarge` past the limits
(HTTP 413); a bad .jsonl line is named by its line number. This module knows nothing about
chunking, embeddings or storage.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from rag.errors import LoaderError, UnreadableDocument, UnsupportedFileType
from rag.office_files import Limits, TextBudget, read_docx, read_pdf

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


DEFAULT_LIMITS = Limits()


def load_document(
    filename: str, data: bytes, *, text_field: str = "text", limits: Limits = DEFAULT_LIMITS
) -> list[Document]:
    """Parse `data` according to the extension of `filename`; JSON files may give many Documents."""
    name = sanitize_filename(filename)
    extension = PurePath(name).suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(SUPPORTED_EXTENSIONS)
        raise UnsupportedFileType(f"{name}: unsupported file type {extension or '(none)'!r}; use {supported}")
    if extension in (".json", ".jsonl"):
        return _load_records(name, data, text_field, limits, lines=extension == ".jsonl")
    if extension == ".pdf":
        builder = _Builder()
        read_pdf(name, data, limits, builder)
        text, segments = builder.build()
    elif extension == ".docx":
        builder = _Builder()
        read_docx(name, data, limits, builder)
        text, segments = builder.build()
    elif extension in (".html", ".htm"):
        text, segments = _read_html(_checked(name, decode_text(name, data), limits))
    elif extension in (".md", ".markdown"):
        text, segments = _read_markdown(_checked(name, decode_text(name, data), limits))
    else:
        text = _checked(name, decode_text(name, data), limits)
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


BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MAX_BAD_SHARE = 0.01  # more replaced bytes than this and the file is not text in a known encoding


def decode_text(name: str, data: bytes) -> str:
    """``data`` as text: by its byte-order mark, else UTF-16 when every other byte is NUL, else UTF-8 with each
    invalid byte replaced (U+FFFD); UnreadableDocument when over 1% of it is not text. Newlines become \\n."""
    codec = next((codec for bom, codec in BOMS if data.startswith(bom)), None) or _utf16_without_bom(data) or "utf-8"
    text = data.decode(codec, errors="replace")
    bad = text.count("\ufffd") + text.count("\x00")
    if text and bad > MAX_BAD_SHARE * len(text):
        raise UnreadableDocument(f"{name}: not UTF-8 or UTF-16 text ({bad} of {len(text)} characters unreadable)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when NULs fill the odd/even bytes of the start, as in UTF-16 text of Latin script."""
    head = data[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    if odd > 0.4 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.4 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def _checked(name: str, text: str, limits: Limits) -> str:
    return TextBudget(name, limits.max_text_chars).take(text)


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


def _load_records(name: str, data: bytes, text_field: str, limits: Limits, *, lines: bool) -> list[Document]:
    text = _checked(name, decode_text(name, data), limits)
    if lines:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise UnreadableDocument(f"{name}: line {number}: invalid JSON ({error.msg})") from error
    else:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise UnreadableDocument(f"{name}: invalid JSON ({error})") from error
        records = parsed if isinstance(parsed, list) else [parsed]
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
