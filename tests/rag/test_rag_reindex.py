"""Changing a knowledge base's embedder or chunking: documents are cut again to fit, crash-safely."""

import json
import sqlite3

import pytest

from rag.embedder import HashingEmbedder, load_embedder
from rag.loaders import load_document
from rag.query import MODES, check_filters
from rag.retriever import retrieve
from rag.splitter import ChunkingSettings
from rag.store import KnowledgeBase, Manifest

SENTENCES = [f"Sentence {i} tells of volcano number {i} erupting over the island of Vulcania." for i in range(40)]
LONG = " ".join(SENTENCES).encode()
NOTES = b"# Travel\n\n## Iceland\n\n" + b" ".join(
    b"Geysers and glaciers shape the Icelandic landscape." for _ in range(12)
)
SMALL = HashingEmbedder(32, max_tokens=16)


def cut(kb):
    """(document filename, chunk text, start, end, section) of every chunk, in order."""
    return sorted((c.filename, c.ordinal, c.text, c.start, c.end, c.section) for c in kb.database.chunks().values())


def assert_consistent(kb):
    ids = sorted(kb.database.chunks())
    assert sorted(kb.dense.ids().tolist()) == sorted(kb.bm25.ids().tolist()) == ids
    assert kb.dense.dimension == kb.manifest.dimension == kb.embedder.dimension


@pytest.fixture
def filled(kb):
    kb.ingest("long.txt", LONG)
    kb.ingest("notes.md", NOTES)
    return kb


@pytest.mark.folder_only
def test_an_embedder_reading_less_recuts_every_document_from_its_text(filled, tmp_path):
    filled.set_embedder(SMALL)
    assert filled.manifest.chunking == ChunkingSettings(16, 2)  # 48/6 cut to 16, the overlap scaled with it
    manifest = json.loads((filled.path / "kb.json").read_text())
    assert (manifest["embedder"], manifest["chunking"]) == ("hashing-32-16", {"chunk_size": 16, "chunk_overlap": 2})
    chunks = filled.database.chunks().values()
    assert all(SMALL.count_tokens(c.indexed_text) <= 16 for c in chunks)
    # exactly what a new knowledge base on that embedder holds for the same files
    fresh = KnowledgeBase.create(tmp_path / "fresh", SMALL)
    fresh.ingest("long.txt", LONG)
    fresh.ingest("notes.md", NOTES)
    assert cut(filled) == cut(fresh) and len(cut(filled)) > 2 * len(SENTENCES) // 3
    text = load_document("long.txt", LONG)[0].text
    assert all(c.text == text[c.start : c.end] for c in chunks if c.filename == "long.txt")
    assert {c.section for c in chunks if c.filename == "notes.md"} == {"Travel", "Travel > Iceland"}
    assert [d.chunk_count for d in filled.documents()] == [d.chunk_count for d in fresh.documents()]
    assert_consistent(filled)
    for mode in MODES:
        assert retrieve(filled, "volcano number 17", mode=mode, top_k=1)[0].filename == "long.txt"
    reopened = KnowledgeBase(filled.path, load_embedder("hashing-32-16"))
    assert cut(reopened) == cut(filled) and not reopened.manifest.dense_stale
    assert_consistent(reopened)


@pytest.mark.folder_only
def test_the_same_tokens_keep_the_chunks_and_their_ids(filled):
    before = filled.database.chunks()
    filled.set_embedder(HashingEmbedder(32, max_tokens=48))
    assert filled.database.chunks() == before and filled.manifest.chunking == ChunkingSettings(48, 6)
    assert filled.manifest.embedder == "hashing-32-48"
    assert_consistent(filled)


@pytest.mark.folder_only
def test_new_chunk_settings_with_the_same_embedder(filled):
    filled.set_embedder(filled.embedder, chunking=ChunkingSettings(24, 0))
    assert filled.manifest.chunking == ChunkingSettings(24, 0)
    assert all(filled.embedder.count_tokens(c.indexed_text) <= 24 for c in filled.database.chunks().values())
    assert_consistent(filled)


@pytest.mark.folder_only
def test_chunks_longer_than_the_embedder_reads_are_refused_and_nothing_changes(filled, tmp_path, embedder):
    with pytest.raises(ValueError, match="over the 48 tokens hashing-64-48 reads"):
        KnowledgeBase.create(tmp_path / "too-big", embedder, chunking=ChunkingSettings(100, 8))
    assert not (tmp_path / "too-big").exists()
    before = (cut(filled), Manifest.read(filled.path))
    with pytest.raises(ValueError, match="16 tokens"):
        filled.set_embedder(SMALL, chunking=ChunkingSettings(48, 6))
    assert (cut(filled), Manifest.read(filled.path)) == before == (cut(filled), filled.manifest)


@pytest.mark.folder_only
def test_a_failed_commit_leaves_the_knowledge_base_as_it_was(filled, monkeypatch):
    before = (cut(filled), Manifest.read(filled.path))
    monkeypatch.setattr(type(filled.database), "replace_chunks", lambda *a: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError):
        filled.set_embedder(SMALL)
    monkeypatch.undo()
    assert (cut(filled), Manifest.read(filled.path)) == before
    assert cut(KnowledgeBase(filled.path, filled.embedder)) == before[0]


@pytest.mark.folder_only
def test_a_knowledge_base_from_before_texts_were_stored_is_upgraded_and_recut_within_its_chunks(filled):
    with sqlite3.connect(filled.path / "chunks.sqlite") as db:  # the schema of earlier lorag versions
        db.execute("ALTER TABLE documents DROP COLUMN text")
        db.execute("ALTER TABLE documents DROP COLUMN segments")
        db.execute("DROP TABLE settings")
    old = KnowledgeBase(filled.path, filled.embedder)
    assert [d.filename for d in old.documents()] == ["long.txt", "notes.md"]
    old.ingest("paris.txt", b"Paris is the capital of France.")
    old.set_embedder(SMALL)
    texts = {name: load_document(name, data)[0].text for name, data in [("long.txt", LONG), ("notes.md", NOTES)]}
    for c in old.database.chunks().values():
        assert SMALL.count_tokens(c.indexed_text) <= 16
        if c.filename in texts:
            assert c.text == texts[c.filename][c.start : c.end]
    assert {c.section for c in old.database.chunks().values() if c.filename == "notes.md"} == {
        "Travel",
        "Travel > Iceland",
    }
    assert_consistent(old)
    assert retrieve(old, "volcano number 17", mode="bm25", top_k=1)[0].filename == "long.txt"


def test_the_first_of_two_files_with_the_same_content_is_stored(kb):
    first, second = kb.add_documents(
        load_document("first.txt", b"Identical words.") + load_document("second.txt", b"Identical words.")
    )
    assert first == second and first.filename == "first.txt"
    assert [d.filename for d in kb.documents()] == ["first.txt"]


@pytest.mark.parametrize(
    "filters, named",
    [
        ({"team": {"$eq": "hr"}}, "'team': an object"),
        ({"team": ["hr", ["ops"]]}, "'team': a nested list"),
        ({"team": None}, "'team': null"),
        ({"rank": 2**70}, "'rank': the integer"),
        ({"bad key'": 1}, "invalid filter key"),
    ],
)
def test_filter_values_that_are_not_scalars_are_refused_naming_the_key(kb, filters, named):
    kb.ingest("paris.txt", b"Paris is the capital of France.", metadata={"team": "hr", "rank": 2})
    with pytest.raises(ValueError, match=named):
        retrieve(kb, "capital", filters=filters)
    check_filters({"team": ["hr", "ops"], "rank": 2, "score": 0.5, "flag": True})
    assert [h.filename for h in retrieve(kb, "capital", filters={"team": ["hr", "x"], "rank": 2})] == ["paris.txt"]
