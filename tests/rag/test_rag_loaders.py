import io
import json

import pytest
from pypdf import PdfWriter

from rag.loaders import LoaderError, UnreadableDocument, UnsupportedFileType, load_document, sanitize_filename


def spans(document):
    return [(document.text[s.start : s.end], s.page, s.section) for s in document.segments]


def test_txt_is_one_segment_and_hashes_its_bytes():
    [doc] = load_document("notes.txt", "caf\u00e9 au lait\r\nsecond line".encode())
    assert doc.text == "caf\u00e9 au lait\nsecond line"
    assert spans(doc) == [(doc.text, None, None)]
    assert doc.size == len("caf\u00e9 au lait\r\nsecond line".encode())
    assert len(doc.sha256) == 64


def test_markdown_keeps_source_and_heading_trail():
    source = "Preamble.\n\n# Guide\nIntro.\n\n## Install\nRun it.\n```\n# not a heading\n```\n# Other\nEnd.\n"
    [doc] = load_document("guide.md", source.encode())
    assert doc.text == source
    assert spans(doc) == [
        ("Preamble.\n\n", None, None),
        ("# Guide\nIntro.\n\n", None, "Guide"),
        ("## Install\nRun it.\n```\n# not a heading\n```\n", None, "Guide > Install"),
        ("# Other\nEnd.\n", None, "Other"),
    ]


def test_html_strips_tags_scripts_and_sections_by_heading():
    markup = (
        "<html><head><title>T</title><style>p {}</style></head><body>"
        "<p>Before &amp; after.</p><h1>Main</h1><p>First <b>bold</b> para.</p>"
        "<script>var x = 1;</script><h2>Sub</h2><ul><li>one</li><li>two</li></ul></body></html>"
    )
    [doc] = load_document("page.html", markup.encode())
    assert doc.text == "Before & after.\n\nMain\n\nFirst bold para.\n\nSub\n\none\n\ntwo"
    assert spans(doc) == [
        ("Before & after.", None, None),
        ("Main\n\nFirst bold para.", None, "Main"),
        ("Sub\n\none\n\ntwo", None, "Main > Sub"),
    ]


def test_pdf_keeps_page_numbers(make_pdf):
    [doc] = load_document("report.pdf", make_pdf(["Alpha page text", "Beta page text"]))
    assert spans(doc) == [("Alpha page text", 1, None), ("Beta page text", 2, None)]


def test_pdf_encrypted_with_an_owner_password_only_is_read(make_pdf):
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Open text"])))
    writer.encrypt("", owner_password="owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    [doc] = load_document("open.pdf", buffer.getvalue())
    assert doc.text == "Open text"


def test_docx_headings_become_sections(make_docx):
    data = make_docx([("p", "Lead."), ("h1", "Setup"), ("p", "Install it."), ("h2", "Linux"), ("p", "Use apt.")])
    [doc] = load_document("manual.docx", data)
    assert spans(doc) == [
        ("Lead.", None, None),
        ("Setup\n\nInstall it.", None, "Setup"),
        ("Linux\n\nUse apt.", None, "Setup > Linux"),
    ]


def test_json_and_jsonl_records_become_documents_with_metadata():
    records = [{"body": "First record.", "author": "ann", "year": 2024}, {"body": "Second record.", "author": "bob"}]
    from_json = load_document("data.json", json.dumps(records).encode(), text_field="body")
    from_jsonl = load_document("data.jsonl", "\n".join(json.dumps(r) for r in records).encode(), text_field="body")
    for documents in (from_json, from_jsonl):
        assert [d.text for d in documents] == ["First record.", "Second record."]
        assert [d.metadata for d in documents] == [{"author": "ann", "year": 2024}, {"author": "bob"}]
        assert len({d.sha256 for d in documents}) == 2
    [single] = load_document("one.json", b'{"text": "Only one.", "id": 7}')
    assert (single.text, single.metadata) == ("Only one.", {"id": 7})


def test_unsupported_type_is_its_own_error():
    with pytest.raises(UnsupportedFileType, match="image.png"):
        load_document("image.png", b"\x89PNG")
    with pytest.raises(UnsupportedFileType):
        load_document("README", b"no extension")


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("empty.txt", b"  \n\t "),
        ("empty.md", b"\n \n"),
        ("empty.html", b"<html><script>only()</script></html>"),
        ("empty.jsonl", b"\n"),
        ("blank.jsonl", b'{"text": "   "}'),
        ("missing.json", b'{"body": "text in the wrong field"}'),
        ("broken.json", b'{"text": '),
    ],
)
def test_documents_without_text_are_rejected_by_name(filename, data):
    with pytest.raises(UnreadableDocument, match=filename):
        load_document(filename, data)


def test_empty_pdf_page_is_rejected(make_pdf):
    with pytest.raises(UnreadableDocument, match="scan.pdf: no text"):
        load_document("scan.pdf", make_pdf([""]))


@pytest.mark.parametrize("damage", [lambda pdf: pdf[: len(pdf) // 2], lambda pdf: b"not a pdf at all"])
def test_corrupt_pdf_is_rejected_by_name(make_pdf, damage):
    with pytest.raises(UnreadableDocument, match="bad.pdf: not a readable PDF"):
        load_document("bad.pdf", damage(make_pdf(["Some text"])))


def test_password_protected_pdf_is_rejected(make_pdf):
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Secret text"])))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(UnreadableDocument, match="locked.pdf: the PDF is encrypted"):
        load_document("locked.pdf", buffer.getvalue())


def test_corrupt_docx_is_rejected_by_name():
    with pytest.raises(UnreadableDocument, match="bad.docx"):
        load_document("bad.docx", b"PK\x03\x04 not really a zip")


def test_filenames_are_sanitised():
    assert sanitize_filename("../../etc/passwd.txt") == "passwd.txt"
    assert sanitize_filename("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert sanitize_filename("bad\x00na\x1bme\n.md") == "badname.md"
    assert load_document("dir/../x\x07.txt", b"text")[0].name == "x.txt"
    for hopeless in ("", "a/", "..", "\x00\x01"):
        with pytest.raises(LoaderError):
            sanitize_filename(hopeless)
