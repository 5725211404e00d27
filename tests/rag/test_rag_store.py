import json

import pytest

from rag.augment import augment
from rag.embedder import HashingEmbedder
from rag.errors import AlreadyExists, NotFound
from rag.index import DenseIndex
from rag.query import MODES
from rag.retriever import retrieve
from rag.store import KnowledgeBase, KnowledgeBases, Manifest

PARIS = b"Paris is the capital of France. The Eiffel Tower stands in Paris."
TOKYO = b"Tokyo is the capital of Japan. Mount Fuji can be seen from Tokyo."


def found(kb, query, mode, **options):
    return [hit.filename for hit in retrieve(kb, query, mode=mode, **options)]


def test_pipeline_end_to_end(kb, make_pdf, make_docx):
    kb.ingest("paris.txt", PARIS)
    kb.ingest("report.pdf", make_pdf(["Quarterly revenue grew strongly", "Volcano eruptions in Iceland"]))
    kb.ingest("manual.docx", make_docx([("h1", "Installation"), ("p", "Install the gateway with pip.")]))
    kb.ingest("notes.md", b"# Cooking\n\n## Pasta\n\nBoil salted water before adding spaghetti.\n")

    for mode in MODES:
        [hit] = retrieve(kb, "volcano eruptions Iceland", mode=mode, top_k=1)
        assert (hit.filename, hit.page, hit.text) == ("report.pdf", 2, "Volcano eruptions in Iceland")
        [hit] = retrieve(kb, "boil spaghetti water", mode=mode, top_k=1)
        assert (hit.filename, hit.section) == ("notes.md", "Cooking > Pasta")
        assert kb.document(hit.document_id).filename == "notes.md"
    hit = retrieve(kb, "install the gateway", top_k=1)[0]
    assert (hit.filename, hit.section) == ("manual.docx", "Installation")

    messages, citations = augment([{"role": "user", "content": "How do I install the gateway?"}], [hit])
    assert "[1] manual.docx, Installation" in messages[0]["content"]
    assert (citations[0].index, citations[0].document_id, citations[0].chunk_id) == (1, hit.document_id, hit.chunk_id)

    assert (kb.manifest.embedder, kb.manifest.dimension) == ("hashing-64-48", 64)
    assert (kb.manifest.chunking.chunk_size, kb.manifest.chunking.chunk_overlap) == (48, 6)
    assert {key: kb.stats()[key] for key in ("documents", "chunks")} == {"documents": 4, "chunks": 6}


@pytest.mark.folder_only
def test_the_folders_files(kb):
    kb.ingest("paris.txt", PARIS)
    manifest = json.loads((kb.path / "kb.json").read_text())
    assert manifest["embedder"] == "hashing-64-48" and manifest["dimension"] == 64
    assert {p.name for p in kb.path.iterdir()} == {"kb.json", "chunks.sqlite", "index.faiss", "bm25.npz", "writer.lock"}
    assert kb.stats() == {"documents": 1, "chunks": 1, "dense_index": "flat"}


def test_reingesting_unchanged_content_is_a_noop(kb):
    [first] = kb.ingest("paris.txt", PARIS)
    before = kb.stats()
    [again] = kb.ingest("renamed.txt", PARIS)
    assert again == first and again.filename == "paris.txt"
    assert kb.stats() == before
    assert len(kb.ingest("data.jsonl", b'{"text": "one"}\n{"text": "one"}\n{"text": "two"}')) == 3
    assert len(kb.documents()) == 3


def test_deleted_document_is_gone_from_every_mode(kb, reopen):
    [paris] = kb.ingest("paris.txt", PARIS)
    [tokyo] = kb.ingest("tokyo.txt", TOKYO)
    kb.delete_document(paris.id)
    for mode in MODES:
        assert "paris.txt" not in found(kb, "Eiffel Tower Paris France", mode)
    assert [d.filename for d in kb.documents()] == ["tokyo.txt"]
    assert kb.stats()["chunks"] == tokyo.chunk_count
    reopened = reopen(kb)
    assert all("paris.txt" not in found(reopened, "Eiffel Tower", mode) for mode in MODES)
    with pytest.raises(NotFound):
        kb.delete_document(paris.id)


def test_filters_on_filename_and_metadata(kb):
    kb.ingest("paris.txt", PARIS, metadata={"team": "europe"})
    kb.ingest("tokyo.txt", TOKYO, metadata={"team": "asia"})
    for mode in MODES:
        assert found(kb, "capital", mode, filters={"team": "asia"}) == ["tokyo.txt"]
        assert found(kb, "capital", mode, filters={"filename": ["paris.txt", "x.txt"]}) == ["paris.txt"]
        assert found(kb, "capital", mode, filters={"team": "none"}) == []
    with pytest.raises(ValueError):
        retrieve(kb, "capital", filters={"bad key'": 1})


def test_min_score_and_top_k(kb):
    kb.ingest("paris.txt", PARIS)
    kb.ingest("tokyo.txt", TOKYO)
    assert len(retrieve(kb, "capital", top_k=1)) == 1
    assert found(kb, "Eiffel Tower", "dense", min_score=0.3) == ["paris.txt"]
    assert retrieve(kb, "Eiffel Tower", mode="hybrid", min_score=1.01) == []


@pytest.mark.folder_only
def test_indexes_disagreeing_with_sqlite_are_repaired_on_open(kb, monkeypatch):
    kb.ingest("paris.txt", PARIS)
    monkeypatch.setattr(DenseIndex, "save", lambda self, path: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        kb.ingest("tokyo.txt", TOKYO)  # committed to SQLite, indexes not saved
    monkeypatch.undo()
    (kb.path / "bm25.npz").write_bytes(b"truncated")
    reopened = KnowledgeBase(kb.path, kb.embedder)
    assert len(reopened.dense) == len(reopened.bm25) == len(reopened.database.chunks()) == 2
    for mode in MODES:
        assert found(reopened, "Mount Fuji Japan", mode, top_k=1) == ["tokyo.txt"]


@pytest.mark.folder_only
def test_changing_the_embedder_reembeds(kb, monkeypatch):
    kb.ingest("paris.txt", PARIS)
    kb.ingest("tokyo.txt", TOKYO)
    kb.set_embedder(HashingEmbedder(32))
    assert (kb.manifest.embedder, kb.dense.dimension) == ("hashing-32", 32)
    assert found(kb, "Mount Fuji", "dense", top_k=1) == ["tokyo.txt"]
    with pytest.raises(ValueError, match="hashing-32"):
        KnowledgeBase(kb.path, HashingEmbedder(64))

    monkeypatch.setattr(DenseIndex, "save", lambda self, path: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        kb.set_embedder(HashingEmbedder(48))
    monkeypatch.undo()
    assert Manifest.read(kb.path).dense_stale
    reopened = KnowledgeBase(kb.path, HashingEmbedder(48))
    assert not Manifest.read(kb.path).dense_stale and reopened.dense.dimension == 48
    assert found(reopened, "Mount Fuji", "dense", top_k=1) == ["tokyo.txt"]


def test_large_knowledge_base_uses_hnsw(tmp_path, embedder):
    kb = KnowledgeBase.create(tmp_path / "big", embedder, hnsw_threshold=20)
    kb.ingest("many.jsonl", "\n".join(json.dumps({"text": f"record {i} about item{i}"}) for i in range(30)).encode())
    assert kb.stats()["dense_index"] == "hnsw"
    assert retrieve(kb, "record 17 about item17", mode="dense", top_k=1)[0].text == "record 17 about item17"


def test_knowledge_bases_collection(tmp_path):
    kbs = KnowledgeBases(tmp_path / "kbs", default_embedder="hashing-64")
    kbs.create("docs_v1").ingest("paris.txt", PARIS)
    kbs.create("other-kb", embedder="hashing-32")
    for bad in ("Docs", "a@b", "../x", "", "x" * 65, "a b"):
        with pytest.raises(ValueError):
            kbs.create(bad)
    with pytest.raises(AlreadyExists):
        kbs.create("docs_v1")
    assert [(m.name, m.embedder) for m in kbs.list()] == [("docs_v1", "hashing-64"), ("other-kb", "hashing-32")]

    reopened = KnowledgeBases(tmp_path / "kbs")
    assert found(reopened.get("docs_v1"), "Eiffel", "bm25") == ["paris.txt"]
    assert reopened.get("docs_v1") is reopened.get("docs_v1")
    reopened.delete("docs_v1")
    assert [m.name for m in reopened.list()] == ["other-kb"]
    with pytest.raises(NotFound):
        reopened.get("docs_v1")
    with pytest.raises(NotFound):
        reopened.delete("docs_v1")
