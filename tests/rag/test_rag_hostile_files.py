"""Hostile and odd files: bounded unpacking and text, linear .docx parsing, encodings, JSONL line numbers."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from pypdf import PdfWriter

from rag.errors import DocumentTooLarge, UnreadableDocument
from rag.loaders import load_document
from rag.office_files import Limits


def test_a_docx_of_many_paragraphs_parses_in_linear_time(make_docx):
    """python-docx's per-paragraph style lookup took 16.6 s for 10,000 paragraphs; one pass takes well under 1 s."""
    data = make_docx([("h1", "Title")] + [("p", f"line {i}") for i in range(20_000)])
    start = time.perf_counter()
    [doc] = load_document("many.docx", data)
    assert time.perf_counter() - start < 10  # 20,000 style lookups took over 30 s before
    assert doc.text.startswith("Title") and "line 19999" in doc.text and doc.segments[0].section == "Title"


def test_a_docx_that_unpacks_past_the_limit_is_refused_before_parsing(make_docx):
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx([("p", "x")]))) as source, zipfile.ZipFile(bomb, "w") as out:
        for member in source.infolist():
            out.writestr(member, source.read(member), compress_type=zipfile.ZIP_DEFLATED)
        out.writestr("word/media/padding.bin", b"\0" * 8_000_000, compress_type=zipfile.ZIP_DEFLATED)
    assert len(bomb.getvalue()) < 100_000  # 8 MB of zeros pack into a few KB
    with pytest.raises(DocumentTooLarge, match=r"bomb.docx: unpacks to 8 MiB, over the limit of 4 MiB"):
        load_document("bomb.docx", bomb.getvalue(), limits=Limits(max_unpacked_bytes=4 * 2**20))


@pytest.mark.parametrize("name", ["long.txt", "long.md", "long.html", "long.jsonl"])
def test_text_past_the_limit_is_refused_naming_the_file(name):
    data = (json.dumps({"text": "word " * 300}) if name.endswith("jsonl") else "word " * 300).encode()
    with pytest.raises(DocumentTooLarge, match=name):
        load_document(name, data, limits=Limits(max_text_chars=1000))


def test_pdf_and_docx_text_past_the_limit_is_refused(make_pdf, make_docx):
    with pytest.raises(DocumentTooLarge, match="big.pdf"):
        load_document("big.pdf", make_pdf(["word " * 100] * 5), limits=Limits(max_text_chars=1000))
    with pytest.raises(DocumentTooLarge, match="big.docx"):
        load_document("big.docx", make_docx([("p", "word " * 100)] * 5), limits=Limits(max_text_chars=1000))


def test_one_invalid_byte_is_replaced_and_the_rest_stays_utf8():
    text = "Café crème, " * 20 + "fin."
    data = text.encode() + b"\xff"
    [doc] = load_document("menu.txt", data)
    assert doc.text.startswith("Café crème") and doc.text.endswith("fin.\ufffd") and "Ã" not in doc.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_utf16_and_byte_order_marks_are_decoded(encoding):
    [doc] = load_document("notes.txt", "Café crème\r\nsecond line".encode(encoding))
    assert doc.text == "Café crème\nsecond line"


def test_text_in_an_unknown_encoding_is_refused_not_stored_as_mojibake():
    with pytest.raises(UnreadableDocument, match="latin.txt: not UTF-8 or UTF-16 text"):
        load_document("latin.txt", "Déjà vu: à côté, été, élève.".encode("latin-1"))


def test_a_bad_jsonl_line_is_named_by_its_line_number():
    data = "\n".join([json.dumps({"text": "a"}), json.dumps({"text": "b"}), "", '{"text": "c", oops}']).encode()
    with pytest.raises(UnreadableDocument, match=r"bad.jsonl: line 4: invalid JSON"):
        load_document("bad.jsonl", data)


def test_a_pdf_protected_by_permissions_only_is_read(make_pdf):
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Open text"])))
    writer.encrypt(user_password="", owner_password="owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    [doc] = load_document("open.pdf", buffer.getvalue())
    assert "Open text" in doc.text
