"""Knowledge bases in Milvus: every gateway with the same URI shares them, with no state on its own disk.

The collections are described in `rag.milvus_schema`, the document rows in `rag.milvus_documents`.
Milvus has no transaction over several rows, so visibility follows one rule:

**A chunk is visible only while its document has a row in `lorag_documents`.** An upload is
parsed, cut and embedded before anything is written; then, per document, an operation row
("upload", this gateway, now) is written, the document's text, its chunks (upserted in batches,
the operation row refreshed after each; the ids come from the content hash, so two uploads of
the same content write the same rows), and last the document row: that write is the commit. It
is skipped if the row exists (another upload of the same content committed first), so a
committed row is never rewritten by an upload. The operation row is then deleted. Every read
(search, chunks, listings, counts) keeps only chunks of documents with a row (a search drops
hits of other documents, asking deeper when it must), so a reader sees all of a document or
nothing of it. A delete writes a "delete" operation row, deletes the document row (invisible
from then on), then the chunks and the texts, then the operation row. A change of embedder or
chunking writes every document's new chunks into the next generation's collection, then
switches the knowledge base's settings row to it (the commit), then drops the old collection.

A gateway killed mid-upload or mid-delete leaves an operation row, and chunks that no reader
sees. `rag.milvus_bases.MilvusKnowledgeBases` clears such leftovers when it starts (`recover`):
the operations its own `owner` left (the same gateway, restarted) at once, any other's once not
refreshed for `stale_after_s`. A dead upload's chunks and text are deleted unless its document
is committed or another gateway is uploading it now; a dead delete is finished. This module
knows nothing about HTTP, prompts or fusion (`rag.retriever`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from tqdm.auto import tqdm

from rag.database import ChunkRecord, DocumentRecord
from rag.embedder import Embedder, embed_all
from rag.errors import KnowledgeBaseNotFound
from rag.folder import Manifest
from rag.index import Scored
from rag.loaders import Document, load_document
from rag.milvus_documents import DELETE, UPLOAD, MilvusDocuments, document_id
from rag.milvus_schema import (
    KNOWLEDGE_BASES,
    PLACEHOLDER,
    TERMS_VERSION,
    bm25_terms,
    chunk_collections,
    chunks_collection,
    create_chunks,
    one_of,
    quoted,
    rows,
)
from rag.splitter import Chunk, ChunkingSettings, split_document

BATCH = 256
"""Chunks per write; the upload's operation row is refreshed after each."""
MAX_DEPTH = 16_384
"""The most hits Milvus returns for one search."""
_CHUNK_FIELDS = ["id", "document_id", "ordinal", "text", "place"]


def chunk_id(sha256: str, ordinal: int) -> int:
    """The id of chunk `ordinal` of the document with this content hash (63 bits)."""
    return int.from_bytes(hashlib.blake2b(f"{sha256}:{ordinal}".encode(), digest_size=8).digest(), "big") >> 1


class MilvusKnowledgeBase:
    """One knowledge base in Milvus; its settings are read from Milvus on every use, as another gateway may
    change them."""

    def __init__(self, bases: Any, name: str):
        self.bases, self.name, self.client = bases, name, bases.client
        self.database = MilvusDocuments(bases.client, name)
        self.path = f"{bases.uri} (database {bases.db_name or 'default'})"
        self._lock = threading.RLock()
        self.settings()  # KnowledgeBaseNotFound now rather than later

    def settings(self) -> tuple[Manifest, int]:
        """The manifest and the chunk generation, as stored now."""
        found = self.client.query(KNOWLEDGE_BASES, filter=f"name == {quoted(self.name)}", output_fields=["settings"])
        if not found:
            raise KnowledgeBaseNotFound(self.name)
        data = dict(found[0]["settings"])
        manifest = data["manifest"]
        return Manifest(**{**manifest, "chunking": ChunkingSettings(**manifest["chunking"])}), int(data["generation"])

    @property
    def manifest(self) -> Manifest:
        return self.settings()[0]

    @property
    def embedder(self) -> Embedder:
        return self.bases.embedder(self.manifest.embedder)

    def ingest(self, filename: str, data: bytes, *, text_field: str = "text",
               metadata: Mapping[str, Any] | None = None, progress: bool = False) -> list[DocumentRecord]:  # fmt: skip
        """Load a file (see `rag.loaders`), add its documents, and return their records."""
        documents = load_document(filename, data, text_field=text_field)
        if metadata:
            documents = [replace(doc, metadata={**doc.metadata, **metadata}) for doc in documents]
        return self.add_documents(documents, progress=progress)

    def add_documents(
        self, documents: Sequence[Document], *, progress: bool = False, chunking: ChunkingSettings | None = None
    ) -> list[DocumentRecord]:
        """Add the documents not already committed (by sha256), each made visible by its own commit (see the
        module docstring); a record for each, in order."""
        manifest, generation = self.settings()
        embedder = self.bases.embedder(manifest.embedder)
        known = self.database.documents_by_sha256([doc.sha256 for doc in documents])
        fresh: dict[str, Document] = {}
        for doc in documents:
            if doc.sha256 not in known:
                fresh.setdefault(doc.sha256, doc)
        planned = [(doc, split_document(doc, chunking or manifest.chunking, embedder.count_tokens))
                   for doc in tqdm(fresh.values(), desc="chunking", unit="doc", disable=not progress)]  # fmt: skip
        vectors = embed_all(embedder, [c.indexed_text for _, chunks in planned for c in chunks], progress=progress)
        collection, at = chunks_collection(self.name, generation), 0
        for doc, chunks in planned:
            self.write(collection, doc, chunks, vectors[at : at + len(chunks)])
            at += len(chunks)
        records = self.database.documents_by_sha256([doc.sha256 for doc in documents])
        return [records[doc.sha256] for doc in documents]

    def write(self, collection: str, doc: Document, chunks: Sequence[Chunk], vectors: Any) -> None:
        """Write one document: operation row, text, chunks in batches, then the commit (see the module docstring)."""
        owner, new_id = self.bases.owner, document_id(doc.sha256)
        self.database.begin(UPLOAD, new_id, owner)
        self.database.write_text(doc)
        for start in range(0, len(chunks), BATCH):
            end = start + BATCH
            self.client.upsert(collection, _chunk_rows(doc.sha256, new_id, chunks[start:end], vectors[start:end]))
            self.database.beat(UPLOAD, new_id, owner)
        if self.database.row(new_id) is None:
            self.database.commit(doc, len(chunks))
        self.database.end(new_id, owner)

    def delete_document(self, document_id: str) -> None:
        """Make the document invisible (its row deleted), then delete its chunks and texts."""
        self.database.document(document_id)
        self.database.begin(DELETE, document_id, self.bases.owner)
        self.database.uncommit([document_id])
        purge(self.client, self.name, [document_id])
        self.database.end(document_id, self.bases.owner)

    def rankings(self, query: str, modes: Sequence[str], depth: int, filters: Any = None) -> dict[str, Scored]:
        """The `depth` best (chunk id, score) of committed documents for each of `modes`, within `filters`."""
        manifest, generation = self.settings()
        where = ""
        if filters:
            allowed = self.database.document_ids(filters)
            if not allowed:
                return {mode: [] for mode in modes}
            where = one_of("document_id", allowed)
        collection = chunks_collection(self.name, generation)
        asked: dict[str, tuple[str, Any]] = {}
        if "dense" in modes:
            asked["dense"] = ("dense", self.bases.embedder(manifest.embedder).embed([query])[0].tolist())
        if "bm25" in modes:
            asked["bm25"] = ("sparse", bm25_terms([query])[0])
        return {mode: self._search(collection, field, data, depth, where) if data else []
                for mode, (field, data) in asked.items()}  # fmt: skip

    def _search(self, collection: str, field: str, data: Any, depth: int, where: str) -> Scored:
        """Hits of committed documents, best first: asks deeper while hits of other documents crowd them out."""
        metric = "IP" if field == "dense" else "BM25"
        limit = depth
        while True:
            found = self.client.search(
                collection, data=[data], anns_field=field, limit=limit, filter=where,
                output_fields=["document_id"], search_params={"metric_type": metric},
            )[0]  # fmt: skip
            visible = self.database.committed(hit["entity"]["document_id"] for hit in found)
            hits = [(int(hit["id"]), abs(float(hit["distance"])) if metric == "BM25" else float(hit["distance"]))
                    for hit in found if hit["entity"]["document_id"] in visible]  # fmt: skip
            if len(hits) >= depth or len(found) < limit or limit >= MAX_DEPTH:
                return hits[:depth]
            limit = min(MAX_DEPTH, limit * 4)

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """Chunks of committed documents by id; other ids are left out."""
        if not ids:
            return {}
        collection = chunks_collection(self.name, self.settings()[1])
        found = self.client.query(collection, filter=one_of("id", [int(i) for i in ids]), output_fields=_CHUNK_FIELDS)
        documents = self.database.committed(row["document_id"] for row in found)
        return {int(row["id"]): _record(row, doc) for row in found if (doc := documents.get(row["document_id"]))}

    def collection(self) -> str:
        """The chunk collection of the current generation."""
        return chunks_collection(self.name, self.settings()[1])

    def chunks_of(self, document_ids: Sequence[str]) -> tuple[list[ChunkRecord], dict[int, Any]]:
        """Every chunk of these committed documents, and its stored vector by chunk id (to copy them)."""
        documents = self.database.committed(document_ids)
        where = one_of("document_id", list(documents)) if documents else "id < 0 and id > 0"
        found = list(rows(self.client, self.collection(), where, [*_CHUNK_FIELDS, "dense"]))
        chunks = [_record(row, documents[row["document_id"]]) for row in found]
        return chunks, {int(row["id"]): row["dense"] for row in found}

    def set_embedder(
        self, embedder: Embedder, *, chunking: ChunkingSettings | None = None, progress: bool = False
    ) -> None:
        """Cut every document again for `embedder` and `chunking` (default: the current chunking fitted to it)
        into the next generation, then switch to it (see the module docstring). ValueError before anything
        is written for a chunk size over what `embedder` reads; nothing happens if nothing changes."""
        with self._lock:
            manifest, generation = self.settings()
            chunking = chunking or manifest.chunking.fitted(embedder.max_tokens)
            chunking.check_fits(embedder.max_tokens, embedder.id)
            new = replace(manifest, embedder=embedder.id, dimension=embedder.dimension, chunking=chunking)
            if new == manifest:
                return
            records = self.database.documents()
            sources = self.database.sources([record.id for record in records])
            cut = {record.id: split_document(source, chunking, embedder.count_tokens)
                   for record in tqdm(records, desc="re-splitting", unit="doc", disable=not progress)
                   if (source := sources[record.id]) is not None}  # fmt: skip
            vectors = embed_all(
                embedder, [c.indexed_text for chunks in cut.values() for c in chunks], progress=progress
            )
            collection, at = create_chunks(self.client, self.name, generation + 1, embedder.dimension), 0
            for record in records:
                chunks = cut.get(record.id, [])
                if chunks:
                    rows_ = _chunk_rows(record.sha256, record.id, chunks, vectors[at : at + len(chunks)])
                    self.client.upsert(collection, rows_)
                at += len(chunks)
            write_settings(self.client, new, generation + 1)
            for record in records:
                self.database.update(record.id, chunk_count=len(cut.get(record.id, [])))
            self.client.drop_collection(chunks_collection(self.name, generation))

    def set_extra(self, changes: Mapping[str, Any]) -> Manifest:
        """Merge `changes` into the manifest's `extra` (None removes a key), save it; return the manifest."""
        with self._lock:
            manifest, generation = self.settings()
            extra = {k: v for k, v in {**manifest.extra, **changes}.items() if v is not None}
            manifest = replace(manifest, extra=extra)
            write_settings(self.client, manifest, generation)
            return manifest

    def documents(self) -> list[DocumentRecord]:
        return self.database.documents()

    def document(self, document_id: str) -> DocumentRecord:
        return self.database.document(document_id)

    def stats(self) -> dict[str, Any]:
        documents, chunks = self.database.counts()
        return {"documents": documents, "chunks": chunks, "dense_index": "milvus"}


def write_settings(client: Any, manifest: Manifest, generation: int) -> None:
    """Store a knowledge base's manifest and chunk generation (its settings row)."""
    settings = {"manifest": asdict(manifest), "generation": generation, "terms": TERMS_VERSION}
    client.upsert(KNOWLEDGE_BASES, [{"name": manifest.name, "settings": settings, "_v": PLACEHOLDER}])


def purge(client: Any, kb: str, document_ids: Sequence[str]) -> None:
    """Delete these documents' chunks (every generation), then their texts."""
    for collection in chunk_collections(client, kb):
        client.delete(collection, filter=one_of("document_id", list(document_ids)))
    MilvusDocuments(client, kb).remove_texts(list(document_ids))


def _chunk_rows(sha256: str, document_id: str, chunks: Sequence[Chunk], vectors: Any) -> list[dict[str, Any]]:
    terms = bm25_terms([c.indexed_text for c in chunks])
    return [{"id": chunk_id(sha256, c.ordinal), "document_id": document_id, "ordinal": c.ordinal, "text": c.text,
             "indexed": c.indexed_text, "terms": t, "dense": vector.tolist(),
             "place": {"start": c.start, "end": c.end, "page": c.page, "section": c.section}}
            for c, t, vector in zip(chunks, terms, vectors, strict=True)]  # fmt: skip


def _record(row: Mapping[str, Any], document: Mapping[str, Any]) -> ChunkRecord:
    place, metadata = row["place"], dict(document["metadata"] or {})
    return ChunkRecord(int(row["id"]), row["document_id"], document["filename"], int(row["ordinal"]), row["text"],
                       place["start"], place["end"], place["page"], place["section"], metadata)  # fmt: skip
