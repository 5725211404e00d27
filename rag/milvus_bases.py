"""The knowledge bases of one Milvus database, by name; what dead uploads left removed when it starts, and
chunk collections whose BM25 terms an older lorag wrote rewritten (`rag.milvus_schema`: `TERMS_VERSION`).

Settings rows, document rows and chunk collections are those of `rag.milvus_schema`; the visibility
rule and the recovery rule are in `rag.milvus_store`'s docstring. A gateway's `owner` names it (the
same after a restart: the gateway passes its host and knowledge-base folder), so that its own
dead uploads are removed at its next start. This module knows nothing about ranking or HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

from rag.backend import Embedders, validate_name
from rag.embedder import DEFAULT_EMBEDDER, Embedder, load_embedder
from rag.errors import AlreadyExists, KnowledgeBaseNotFound
from rag.folder import Manifest
from rag.index import HNSW_THRESHOLD
from rag.milvus_attachments import MilvusAttachments, remove_attachments
from rag.milvus_documents import DELETE, MilvusDocuments
from rag.milvus_schema import (
    DOCUMENTS,
    KNOWLEDGE_BASES,
    OPERATIONS,
    PAGE,
    TERMS_VERSION,
    TEXTS,
    bm25_terms,
    chunk_collections,
    chunks_collection,
    connect,
    create_chunks,
    quoted,
    rows,
)
from rag.milvus_store import MilvusKnowledgeBase, purge, write_settings
from rag.splitter import ChunkingSettings

STALE_AFTER_S = 600
"""Seconds after which another gateway's unfinished upload or delete counts as dead."""


class MilvusKnowledgeBases:
    """The knowledge bases of one Milvus database; `owner` names this gateway (the same after a restart)."""

    def __init__(
        self, uri: str, *, token: str | None = None, db_name: str | None = None, owner: str,
        embedder_factory: Callable[[str], Embedder] = load_embedder, default_embedder: str = DEFAULT_EMBEDDER,
        stale_after_s: float = STALE_AFTER_S,
    ):  # fmt: skip
        self.uri, self.db_name, self.owner = uri, db_name, owner
        self.client = connect(uri, token, db_name)
        self.default_embedder = default_embedder
        self._embedders = Embedders(embedder_factory)
        self.stale_after_s = stale_after_s
        self.recovered = self.recover()
        self.upgraded = self.upgrade_terms()

    def embedder(self, embedder_id: str) -> Embedder:
        return self._embedders(embedder_id)

    def recover(self) -> int:
        """Clear what dead uploads and deletes left (see `rag.milvus_store`); how many operations."""
        stale = int(time.time() - self.stale_after_s)
        where = f"owner == {quoted(self.owner)} or updated < {stale}"
        dead = list(rows(self.client, OPERATIONS, where, ["key", "kb", "document_id", "operation", "owner"]))
        for op in dead:
            documents, doc = MilvusDocuments(self.client, op["kb"]), op["document_id"]
            if op["operation"] == DELETE:
                documents.uncommit([doc])
                purge(self.client, op["kb"], [doc])
            elif documents.row(doc) is None and not documents.others_busy(doc, op["owner"], stale):
                purge(self.client, op["kb"], [doc])
            self.client.delete(OPERATIONS, filter=f"key == {quoted(op['key'])}")
        return len(dead)

    def upgrade_terms(self) -> list[str]:
        """Rewrite into its next generation each knowledge base whose chunks' BM25 terms were written under
        another `TERMS_VERSION` (the stored vectors are copied, nothing is embedded again); their names."""
        stored = rows(self.client, KNOWLEDGE_BASES, 'name != ""', ["name", "settings"])
        names = [row["name"] for row in stored if row["settings"].get("terms") != TERMS_VERSION]
        for name in names:
            manifest, generation = MilvusKnowledgeBase(self, name).settings()
            new = create_chunks(self.client, name, generation + 1, manifest.dimension)
            old = rows(self.client, chunks_collection(name, generation), 'document_id != ""',
                       ["id", "document_id", "ordinal", "text", "indexed", "dense", "place"])  # fmt: skip
            while batch := list(islice(old, PAGE)):
                terms = bm25_terms([row["indexed"] for row in batch])
                self.client.upsert(new, [{**row, "terms": t} for row, t in zip(batch, terms, strict=True)])
            write_settings(self.client, manifest, generation + 1)
            self.client.drop_collection(chunks_collection(name, generation))
        return names

    def create(
        self, name: str, *, embedder: str | None = None, chunking: ChunkingSettings | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD, extra: Mapping[str, Any] | None = None,
    ) -> MilvusKnowledgeBase:  # fmt: skip
        """Create an empty knowledge base (what a crashed delete of the same name left is removed first)."""
        validate_name(name)
        embedder_ = self.embedder(embedder or self.default_embedder)
        if self._exists(name):
            raise AlreadyExists(f"knowledge base {name!r} already exists")
        chunking = chunking or ChunkingSettings.for_embedder(embedder_.max_tokens)
        chunking.check_fits(embedder_.max_tokens, embedder_.id)
        self._remove_rows(name)
        create_chunks(self.client, name, 0, embedder_.dimension)
        manifest = Manifest(name, embedder_.id, embedder_.dimension, chunking, int(time.time()), hnsw_threshold,
                            extra=dict(extra or {}))  # fmt: skip
        write_settings(self.client, manifest, 0)
        return MilvusKnowledgeBase(self, name)

    def get(self, name: str) -> MilvusKnowledgeBase:
        """The knowledge base `name`; raises NotFound."""
        return MilvusKnowledgeBase(self, validate_name(name))

    def set_embedder(self, name: str, embedder: str | None = None, *, chunking: ChunkingSettings | None = None,
                     progress: bool = False) -> MilvusKnowledgeBase:  # fmt: skip
        kb = self.get(name)
        kb.set_embedder(self.embedder(embedder) if embedder else kb.embedder, chunking=chunking, progress=progress)
        return kb

    def manifest(self, name: str) -> Manifest:
        return self.get(name).manifest

    def attachments(self, name: str) -> MilvusAttachments:
        """The files attached to knowledge base `name` as a vector store (`rag.milvus_attachments`)."""
        return MilvusAttachments(self.client, validate_name(name), owner=self.owner, stale_after_s=self.stale_after_s)

    def counts(self, name: str) -> tuple[int, int]:
        return MilvusDocuments(self.client, validate_name(name)).counts()

    def list(self) -> list[Manifest]:
        names = sorted(row["name"] for row in rows(self.client, KNOWLEDGE_BASES, 'name != ""', ["name"]))
        return [manifest for name in names if (manifest := self._manifest_or_none(name)) is not None]

    def delete(self, name: str) -> None:
        """Delete knowledge base `name`: its settings row first (it is gone from then on), then the rest."""
        if not self._exists(validate_name(name)):
            raise KnowledgeBaseNotFound(name)
        self.client.delete(KNOWLEDGE_BASES, filter=f"name == {quoted(name)}")
        self._remove_rows(name)

    def _remove_rows(self, name: str) -> None:
        for collection in chunk_collections(self.client, name):
            self.client.drop_collection(collection)
        self.client.delete(TEXTS, filter=f"kb == {quoted(name)}")
        self.client.delete(DOCUMENTS, filter=f"kb == {quoted(name)}")
        self.client.delete(OPERATIONS, filter=f"kb == {quoted(name)}")
        remove_attachments(self.client, name)

    def _exists(self, name: str) -> bool:
        return bool(self.client.query(KNOWLEDGE_BASES, filter=f"name == {quoted(name)}", output_fields=["name"]))

    def _manifest_or_none(self, name: str) -> Manifest | None:
        try:
            return self.manifest(name)
        except KnowledgeBaseNotFound:  # deleted since it was listed
            return None
