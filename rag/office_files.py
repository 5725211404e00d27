"""PDF and DOCX readers, bounded in memory and time: the text of a packaged document, by page or heading.

A DOCX is a zip: its unpacked size is checked against ``limits.max_unpacked_bytes`` before
anything is parsed (a few hundred KB can unpack to gigabytes), and its body is walked once with
lxml, styles looked up in a table built once, so time is linear in the document. A PDF is read
page by page with pypdf, whose own limits bound each decompressed stream. Both stop with
:class:`~rag.errors.DocumentTooLarge` once the text passes ``limits.max_text_chars``. An
encrypted PDF is read only when it opens with an empty password (permissions only, as "protected"
PDFs usually are); one that needs a password is refused. This module knows nothing about
chunking or storage.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from rag.errors import DocumentTooLarge, UnreadableDocument

MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """How much one uploaded file may unpack to, and how much text it may hold."""

    max_unpacked_bytes: int = 32 * MIB
    max_text_chars: int = 16 * MIB


class TextBudget:
    """Counts the characters read from one file and refuses the one that passes the limit."""

    def __init__(self, name: str, limit: int):
        self.name, self.limit, self.used = name, limit, 0

    def take(self, text: str) -> str:
        self.used += len(text)
        if self.used > self.limit:
            raise DocumentTooLarge(f"{self.name}: holds over {self.limit / MIB:g} Mi characters of text, the limit")
        return text


def read_pdf(name: str, data: bytes, limits: Limits, builder) -> None:
    """Add each page's text to ``builder``, numbered from 1."""
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    budget = TextBudget(name, limits.max_text_chars)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument(f"{name}: the PDF is encrypted with a password")
        for number, page in enumerate(reader.pages, start=1):
            builder.add(budget.take(page.extract_text() or ""), page=number)
    except (UnreadableDocument, DocumentTooLarge):
        raise
    except LimitReachedError as error:
        raise DocumentTooLarge(f"{name}: a part of the PDF unpacks past pypdf's limit ({error})") from error
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        raise UnreadableDocument(f"{name}: not a readable PDF ({error})") from error


def read_docx(name: str, data: bytes, limits: Limits, builder) -> None:
    """Add the body's paragraphs (headings open sections) and tables (one line per row) to ``builder``."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml.ns import qn

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
        if unpacked > limits.max_unpacked_bytes:
            limit = limits.max_unpacked_bytes / MIB
            raise DocumentTooLarge(f"{name}: unpacks to {unpacked / MIB:.0f} MiB, over the limit of {limit:g} MiB")
        document = docx.Document(io.BytesIO(data))
        styles = {style.style_id: style.name for style in document.styles}
        default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    except DocumentTooLarge:
        raise
    except Exception as error:  # python-docx raises zipfile, lxml and KeyError failures alike
        raise UnreadableDocument(f"{name}: not a readable .docx ({error})") from error
    paragraph, table, row, cell = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
    budget = TextBudget(name, limits.max_text_chars)
    for block in document.element.body.iterchildren():
        if block.tag == table:
            for line in block.iter(row):
                cells = (
                    " ".join(_text(p, qn) for p in part.iter(paragraph)).strip() for part in line.iterchildren(cell)
                )
                builder.add(budget.take(" | ".join(cells)))
        elif block.tag == paragraph:
            style = styles.get(block.style) if block.style else default.name if default is not None else None
            level = _heading_level(style or "")
            text = budget.take(_text(block, qn))
            if level is None:
                builder.add(text)
            else:
                builder.heading(level, text)


def _text(element, qn) -> str:
    """The text of a paragraph or cell as Word shows it: text runs, tabs and line breaks, in order."""
    pieces = {qn("w:t"): None, qn("w:tab"): "\t", qn("w:br"): "\n", qn("w:cr"): "\n"}
    return "".join(
        (node.text or "") if pieces[node.tag] is None else pieces[node.tag] for node in element.iter(*pieces)
    )


def _cell_text(cell, paragraph, qn) -> str:
    return " ".join(_text(part, qn) for part in cell.iter(paragraph)).strip()


def _heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else None
