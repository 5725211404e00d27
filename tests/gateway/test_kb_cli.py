"""``lorag kb`` on a knowledge-base folder with the hashing embedder: real .pdf, .docx and .md files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from tests.documents import docx_bytes, pdf_bytes


@pytest.fixture(params=["folder", "milvus"])
def lorag(request, tmp_path, monkeypatch):
    """``lorag(*args)`` -> the CliRunner result (progress bars go to stderr, so parse ``stdout``).

    LORAG_KB_DIR is in tmp_path, or (the milvus run) knowledge bases are in a fresh database of the session's
    Milvus; they use the hashing embedder.
    """
    monkeypatch.setenv("LORAG_KB_DIR", str(tmp_path / "kbs"))
    monkeypatch.setenv("LORAG_EMBEDDER", "hashing-256")
    if request.param == "milvus":
        monkeypatch.setenv("LORAG_MILVUS_URI", request.getfixturevalue("milvus_uri"))
        monkeypatch.setenv("LORAG_MILVUS_DB", request.getfixturevalue("milvus_db"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    return run


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "manual.pdf").write_bytes(pdf_bytes(["Chapter one is about kettles.", "The Zorblat bridge is teal."]))
    (docs / "nested" / "policy.docx").write_bytes(docx_bytes([("h1", "Leave"), ("p", "Staff get 30 days of leave.")]))
    (docs / "notes.md").write_text("# Notes\n\nSourdough needs a daily feed.\n")
    (docs / "ignored.bin").write_bytes(b"\x00\x01")
    return docs


def test_create_add_list_search_and_remove(lorag, folder):
    created = lorag("kb", "create", "handbook", "--chunk-tokens", "64")
    assert created.exit_code == 0 and "created handbook: hashing-256, chunks of 64 tokens" in created.output
    added = lorag("kb", "add", "handbook", str(folder), "--metadata", '{"team": "ops"}')
    assert added.exit_code == 0, added.output
    assert sorted(line.split()[2] for line in added.stdout.splitlines() if line.startswith("added")) == [
        "manual.pdf", "notes.md", "policy.docx",
    ]  # fmt: skip
    again = lorag("kb", "add", "handbook", str(folder / "notes.md"))
    assert again.stdout.startswith("unchanged") and "notes.md" in again.stdout
    listed = lorag("kb", "ls")
    assert listed.output.split()[:3] == ["handbook", "3", "documents"]
    documents = lorag("kb", "ls", "handbook").output.splitlines()
    assert len(documents) == 3
    found = lorag("kb", "search", "handbook", "Zorblat bridge colour", "--top-k", "1")
    assert found.exit_code == 0 and "manual.pdf, page 2" in found.output and "teal" in found.output
    pdf_id = next(line.split()[0] for line in documents if "manual.pdf" in line)
    assert lorag("kb", "rm", "handbook", pdf_id).output == f"removed {pdf_id} from handbook\n"
    assert "teal" not in lorag("kb", "search", "handbook", "Zorblat bridge teal").output
    assert lorag("kb", "rm", "handbook", input="n\n").exit_code == 1  # declined: kept
    assert lorag("kb", "rm", "handbook", "--yes").output == "removed handbook\n"
    assert lorag("kb", "ls").output == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["kb", "create", "Bad Name"], "invalid knowledge base name"),
        (["kb", "add", "missing", "README.md"], "no knowledge base named 'missing'"),
        (["kb", "search", "missing", "anything"], "no knowledge base named 'missing'"),
        (["kb", "rm", "missing", "--yes"], "no knowledge base named 'missing'"),
        (["kb", "eval-beir", "/nonexistent"], "is not a BEIR folder"),
        (["kb", "create", "huge", "--chunk-tokens", "100000"], "over the 128 tokens that embedder 'hashing-256' reads"),
        (["kb", "create", "huge", "--chunk-tokens", "64", "--chunk-overlap", "64"], "less than the chunk size"),
        (["kb", "reindex", "missing", "--embedder", "hashing-64"], "no knowledge base named 'missing'"),
        (["kb", "reindex", "missing"], "give --embedder, --chunk-tokens or --chunk-overlap"),
        (["kb", "search", "missing", "x", "--filters", '{"team": {"$eq": "a"}}'], "filter 'team': an object"),
        (["kb", "search", "missing", "x", "--filters", "[1]"], "--filters must be a JSON object"),
    ],
)
def test_errors_are_one_line(lorag, args, message):
    result = lorag(*args)
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_bad_file_stores_nothing_and_names_the_file(lorag, tmp_path):
    lorag("kb", "create", "handbook")
    (tmp_path / "good.txt").write_text("Fine text.")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 truncated")
    result = lorag("kb", "add", "handbook", str(tmp_path / "good.txt"), str(tmp_path / "bad.pdf"))
    assert result.exit_code == 1 and "bad.pdf" in result.output
    assert lorag("kb", "ls", "handbook").output == ""
    duplicate = lorag("kb", "create", "handbook")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output


def test_eval_beir_prints_the_three_modes(lorag, tmp_path):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Kettles", "text": "A kettle boils water for tea."},
        {"_id": "d2", "title": "Bridges", "text": "The Zorblat bridge spans the river Quen."},
        {"_id": "d3", "title": "Bread", "text": "Sourdough bread rises slowly overnight."},
    ]
    (beir / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    queries = [{"_id": "q1", "text": "which bridge spans the Quen"}, {"_id": "q2", "text": "boiling water for tea"}]
    (beir / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\n")
    result = lorag("kb", "eval-beir", str(beir))
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.split()}
    assert rows["mode"] == ["ndcg@10", "recall@100"]
    assert float(rows["bm25"][0]) == 1.0 and set(rows) == {"mode", "bm25", "dense", "hybrid"}


def test_reindex_with_an_embedder_reading_less_recuts_every_document(lorag, folder):
    (folder / "long.txt").write_text(" ".join(f"Kettle number {i} boils." for i in range(10)))
    lorag("kb", "create", "handbook")
    lorag("kb", "add", "handbook", str(folder), "--metadata", '{"team": "ops"}')
    chunks_before = sum(int(line.split()[2]) for line in lorag("kb", "ls", "handbook").stdout.splitlines())
    result = lorag("kb", "reindex", "handbook", "--embedder", "hashing-64-8")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("handbook: hashing-64-8, chunks of 8 tokens overlapping by 1; 4 documents in ")
    assert "re-splitting" in result.stderr and "embedding" in result.stderr  # the progress bars
    assert lorag("kb", "ls").stdout.split()[-1] == "hashing-64-8"
    chunks_after = sum(int(line.split()[2]) for line in lorag("kb", "ls", "handbook").stdout.splitlines())
    assert chunks_after > chunks_before
    found = lorag("kb", "search", "handbook", "Zorblat bridge teal", "--top-k", "1", "--filters", '{"team": "ops"}')
    assert "manual.pdf, page 2" in found.stdout and "teal" in found.stdout
    other_team = lorag("kb", "search", "handbook", "Zorblat bridge", "--filters", '{"team": "hr"}')
    assert other_team.stdout == "no matching chunks\n"
    too_long = lorag("kb", "reindex", "handbook", "--chunk-tokens", "64")
    assert too_long.exit_code == 1 and "use at most 8" in too_long.output
    assert len(too_long.output.strip().splitlines()) == 1


def test_search_drops_chunks_under_min_score(lorag, folder):
    assert lorag("kb", "create", "docs").exit_code == 0
    assert lorag("kb", "add", "docs", str(folder)).exit_code == 0
    kept = lorag("kb", "search", "docs", "Zorblat bridge", "--mode", "bm25", "--min-score", "0.01")
    assert kept.exit_code == 0 and "Zorblat" in kept.stdout
    dropped = lorag("kb", "search", "docs", "Zorblat bridge", "--mode", "bm25", "--min-score", "1000")
    assert dropped.exit_code == 0 and "no matching chunks" in dropped.stdout
    bad = lorag("kb", "search", "docs", "Zorblat", "--top-k", "0")
    assert bad.exit_code == 1 and "top_k" in bad.stderr
