"""``lorag kb migrate``: a knowledge base copied from the folder to Milvus and back, vectors kept, counts checked."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.knowledge.backends import open_backend
from gateway.settings import Settings
from rag.attachments import Attachment
from rag.embedder import HashingEmbedder
from rag.retriever import retrieve
from tests.documents import pdf_bytes


@pytest.fixture
def settings(tmp_path, monkeypatch, milvus_uri, milvus_db) -> Settings:
    values = {"LORAG_KB_DIR": str(tmp_path / "kbs"), "LORAG_EMBEDDER": "hashing-256",
              "LORAG_MILVUS_URI": milvus_uri, "LORAG_MILVUS_DB": milvus_db}  # fmt: skip
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return Settings()


def lorag(*args: str):
    return CliRunner().invoke(app, list(args))


def hits(kb, query):
    """The best dense hit with its score (the vectors are the same on both backends) and the best BM25 hit
    (whose score each backend computes its own way)."""
    [dense] = retrieve(kb, query, mode="dense", top_k=1)
    [bm25] = retrieve(kb, query, mode="bm25", top_k=1)
    return [(dense.filename, dense.text, dense.page, round(dense.score, 4)), (bm25.filename, bm25.text)]


def test_a_knowledge_base_moves_to_milvus_and_back_without_embedding_again(settings, monkeypatch):
    folder = open_backend(settings, "folder")
    kb = folder.create("docs")
    kb.ingest("report.pdf", pdf_bytes(["Quarterly revenue grew strongly.", "Volcano eruptions in Iceland."]),
              metadata={"team": "geo"})  # fmt: skip
    kb.ingest("notes.md", b"# Cooking\n\n## Pasta\n\nBoil salted water before adding spaghetti.\n")
    files = folder.attachments("docs")  # the knowledge base as a vector store: its files and a cancelled batch
    files.add_batch("vsfb_1", created=5)
    files.put(Attachment("file-b", 10, "completed", "vsfb_1", "b.txt", {"team": "geo"}, usage_bytes=3))
    files.put(Attachment("file-c", 11, "in_progress", "vsfb_1", "c.txt"))
    files.put(Attachment("file-a", 12, "failed", None, "a.txt", error={"code": "invalid_file", "message": "no text"}))
    files.cancel_batch("vsfb_1")
    attached, batch = files.all(), files.batch("vsfb_1")
    before = hits(kb, "volcano Iceland") + hits(kb, "spaghetti water")
    vectors = sorted(map(tuple, np.round(list(kb.dense.vectors().values()), 5)))
    kb.close()

    embedded, embed = [], HashingEmbedder.embed
    with monkeypatch.context() as patched:
        patched.setattr(HashingEmbedder, "embed", lambda self, texts: embedded.append(texts) or embed(self, texts))
        moved = lorag("kb", "migrate", "docs", "--to", "milvus")
    assert moved.exit_code == 0, moved.output
    assert "2 documents, 4 chunks (counts verified)" in moved.stdout
    assert embedded == []  # the vectors were copied, not computed again
    milvus = open_backend(settings, "milvus").get("docs")
    assert milvus.manifest.embedder == "hashing-256" and milvus.manifest.chunking == kb.manifest.chunking
    assert hits(milvus, "volcano Iceland") + hits(milvus, "spaghetti water") == before
    assert open_backend(settings, "milvus").attachments("docs").all() == attached
    assert open_backend(settings, "milvus").attachments("docs").batch("vsfb_1") == batch
    kept = retrieve(milvus, "volcano spaghetti", filters={"team": "geo"})
    assert {(h.filename, h.metadata["team"]) for h in kept} == {("report.pdf", "geo")}

    assert "already exists" in lorag("kb", "migrate", "docs", "--to", "milvus").stderr
    folder.delete("docs")
    back = lorag("kb", "migrate", "docs", "--to", "folder")
    assert back.exit_code == 0, back.output
    returned = open_backend(settings, "folder").get("docs")
    assert sorted(map(tuple, np.round(list(returned.dense.vectors().values()), 5))) == vectors
    assert hits(returned, "volcano Iceland") + hits(returned, "spaghetti water") == before
    assert folder.attachments("docs").all() == attached and folder.attachments("docs").batch("vsfb_1") == batch


def test_migrate_names_what_is_missing(settings, monkeypatch):
    assert "--to is 'cloud'" in lorag("kb", "migrate", "docs", "--to", "cloud").stderr
    assert "no knowledge base named 'docs'" in lorag("kb", "migrate", "docs", "--to", "milvus").stderr
    monkeypatch.delenv("LORAG_MILVUS_URI")
    assert "set LORAG_MILVUS_URI" in lorag("kb", "migrate", "docs", "--to", "milvus").stderr
