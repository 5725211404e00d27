"""The Milvus backend's own rules: the collection of knowledge bases, visibility without transactions, recovery
of what a dead upload or delete left, content-hash dedupe under concurrent uploads, re-embedding by generation.

The shared behaviour (ingest, search in every mode, filters, delete) runs on both backends through the ``kb``
fixture in the other rag tests; these are what only Milvus has."""

from __future__ import annotations

import threading

import pytest

from rag.embedder import HashingEmbedder
from rag.errors import AlreadyExists, DocumentNotFound, NotFound
from rag.milvus_documents import MilvusDocuments
from rag.milvus_schema import chunk_collections, chunks_collection
from rag.query import MODES
from rag.retriever import retrieve
from tests.rag.conftest import milvus_bases

PARIS = b"Paris is the capital of France. The Eiffel Tower stands in Paris."
TOKYO = b"Tokyo is the capital of Japan. Mount Fuji can be seen from Tokyo."


def stored_chunks(kb) -> int:
    """Chunk rows in Milvus, visible or not."""
    collection = chunks_collection(kb.name, kb.settings()[1])
    return kb.client.query(collection, filter="id >= 0 or id < 0", output_fields=["count(*)"])[0]["count(*)"]


def found(kb, query, mode="hybrid"):
    return [hit.filename for hit in retrieve(kb, query, mode=mode)]


def test_the_collection_of_knowledge_bases_is_shared_by_every_client(request, milvus_db):
    one = milvus_bases(request, db_name=milvus_db)
    one.create("docs_v1").ingest("paris.txt", PARIS)
    one.create("other-kb", embedder="hashing-32")
    for bad in ("Docs", "a@b", "../x", "", "x" * 65, "a b"):
        with pytest.raises(ValueError):
            one.create(bad)
    with pytest.raises(AlreadyExists):
        one.create("docs_v1")
    two = milvus_bases(request, db_name=milvus_db)  # another gateway
    assert [(m.name, m.embedder) for m in two.list()] == [("docs_v1", "hashing-64"), ("other-kb", "hashing-32")]
    assert found(two.get("docs_v1"), "Eiffel", "bm25") == ["paris.txt"]
    assert two.counts("docs_v1") == (1, 1)
    two.delete("docs_v1")
    assert [m.name for m in one.list()] == ["other-kb"]
    with pytest.raises(NotFound):
        one.get("docs_v1")
    with pytest.raises(NotFound):
        one.delete("docs_v1")
    assert chunk_collections(one.client, "docs_v1") == []
    assert one.create("docs_v1").documents() == []  # nothing of the deleted one comes back


def test_an_upload_is_invisible_until_its_row_is_committed_and_recovery_removes_a_dead_one(kb, monkeypatch):
    if not hasattr(kb, "bases"):
        pytest.skip("Milvus's visibility rule")
    kb.ingest("tokyo.txt", TOKYO)
    monkeypatch.setattr(MilvusDocuments, "commit", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        kb.ingest("paris.txt", PARIS)
    monkeypatch.undo()
    assert stored_chunks(kb) == 2  # Paris's chunk is written ...
    for mode in MODES:  # ... and seen by no reader
        assert "paris.txt" not in found(kb, "Eiffel Tower Paris France", mode)
    assert [d.filename for d in kb.documents()] == ["tokyo.txt"] and kb.stats()["chunks"] == 1

    other = milvus_bases(kb.bases.request, kb.embedder, db_name=kb.bases.db_name, owner="other")  # another gateway
    assert other.recovered == 0 and stored_chunks(kb) == 2  # not its upload, and not stale yet
    restarted = milvus_bases(kb.bases.request, kb.embedder, db_name=kb.bases.db_name, owner=kb.bases.owner)
    assert restarted.recovered == 1 and stored_chunks(kb) == 1
    assert [d.filename for d in kb.documents()] == ["tokyo.txt"]


def test_a_delete_cut_short_is_invisible_and_finished_by_recovery(kb, monkeypatch):
    if not hasattr(kb, "bases"):
        pytest.skip("Milvus's visibility rule")
    [paris] = kb.ingest("paris.txt", PARIS)
    kb.ingest("tokyo.txt", TOKYO)
    monkeypatch.setattr("rag.milvus_store.purge", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        kb.delete_document(paris.id)
    monkeypatch.undo()
    assert found(kb, "Eiffel Tower Paris", "bm25") == [] and stored_chunks(kb) == 2
    with pytest.raises(DocumentNotFound):
        kb.document(paris.id)
    stale = milvus_bases(kb.bases.request, kb.embedder, db_name=kb.bases.db_name, stale_after_s=-1)
    assert stale.recovered == 1 and stored_chunks(kb) == 1 and kb.database.row(paris.id) is None


def test_the_same_content_uploaded_at_once_through_two_gateways_is_stored_once(request, milvus_db):
    gateways = [milvus_bases(request, db_name=milvus_db, owner=f"gateway-{n}") for n in range(2)]
    gateways[0].create("shared")
    texts = [f"Document {n} is about topic{n} and nothing else.".encode() for n in range(6)]
    errors: list[BaseException] = []

    def upload(gateway):
        try:
            kb = gateway.get("shared")
            for n, text in enumerate(texts):
                kb.ingest(f"{n}.txt", text)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(gateway,)) for gateway in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    kb = gateways[1].get("shared")
    assert sorted(d.filename for d in kb.documents()) == [f"{n}.txt" for n in range(6)]
    assert stored_chunks(kb) == kb.stats()["chunks"] == 6


def test_another_embedder_fills_the_next_generation_then_switches(request, milvus_db):
    bases = milvus_bases(request, db_name=milvus_db)
    kb = bases.create("docs")
    kb.ingest("paris.txt", PARIS)
    kb.ingest("tokyo.txt", TOKYO)
    kb.set_embedder(HashingEmbedder(32))
    other = milvus_bases(request, db_name=milvus_db).get("docs")  # another gateway sees the change at once
    assert (other.manifest.embedder, other.manifest.dimension, other.settings()[1]) == ("hashing-32", 32, 1)
    assert chunk_collections(bases.client, "docs") == [chunks_collection("docs", 1)]
    for mode in MODES:
        assert found(other, "Mount Fuji Japan", mode)[0] == "tokyo.txt"
    with pytest.raises(ValueError, match="chunk"):
        from rag.splitter import ChunkingSettings

        kb.set_embedder(HashingEmbedder(32, max_tokens=16), chunking=ChunkingSettings(64, 8))
    assert other.settings()[1] == 1


def test_bm25_on_milvus_ranks_by_the_folders_terms_stemmed_and_without_stopwords(kb):
    kb.ingest("proteins.txt", b"Misfolded proteins aggregate in neurons.")
    kb.ingest("the.txt", b"The the the of and a in.")
    assert found(kb, "protein aggregation", "bm25") == ["proteins.txt"]  # stemmed: proteins = protein
    assert found(kb, "the of and", "bm25") == []  # stopwords alone match nothing


def test_a_knowledge_base_whose_terms_an_older_lorag_wrote_is_rewritten_when_a_gateway_starts(request, milvus_db):
    from rag.milvus_store import write_settings

    bases = milvus_bases(request, db_name=milvus_db)
    kb = bases.create("docs")
    kb.ingest("paris.txt", PARIS)
    kb.ingest("tokyo.txt", TOKYO)
    manifest, generation = kb.settings()
    collection = chunks_collection("docs", generation)
    old = kb.client.query(collection, filter="id >= 0 or id < 0", output_fields=["*"])
    kb.client.upsert(collection, [{k: v for k, v in row.items() if k != "sparse"} | {"terms": "eiffel"} for row in old])
    write_settings(kb.client, manifest, generation)
    stored = kb.client.query("lorag_knowledge_bases", filter='name == "docs"', output_fields=["settings"])[0]
    kb.client.upsert("lorag_knowledge_bases", [{"name": "docs", "settings": {**stored["settings"], "terms": None},
                                                 "_v": [0.0, 1.0]}])  # fmt: skip
    assert found(kb, "Mount Fuji", "bm25") == []  # terms of another scheme match nothing
    again = milvus_bases(request, db_name=milvus_db)  # the next gateway to start
    assert again.upgraded == ["docs"]
    upgraded = again.get("docs")
    assert upgraded.settings()[1] == generation + 1
    assert found(upgraded, "Mount Fuji", "bm25") == ["tokyo.txt"]
    assert found(upgraded, "Eiffel Tower", "dense")[0] == "paris.txt"  # the vectors were copied
    assert chunk_collections(again.client, "docs") == [chunks_collection("docs", generation + 1)]
    assert milvus_bases(request, db_name=milvus_db).upgraded == []
