"""Vector stores: OpenAI's view of lorag's knowledge bases; one store, one index, two doors.

A vector store's id is its knowledge base's name: a store created here is a new knowledge base
named ``vs_<hex>``, and a knowledge base made through ``/v1/knowledge_bases`` is the store of
that id. What OpenAI's store has beyond a knowledge base (its display name, owner, metadata,
expiry, last activity) is kept in the manifest's ``extra`` under ``"vector_store"``. Who sees a
store (:func:`may_see`): its owner (the key that created it) and admins; a store without an
owner, per the key's knowledge-base scopes. Unknown and invisible stores are the same 404.
An expired store reports ``status: expired``, refuses search and writes (400
``vector_store_expired``), and is deleted by :meth:`VectorStores.sweep`, which runs whenever
stores are listed or created. Files, batches and
search are in :mod:`gateway.knowledge.vector_store_files`. This module knows nothing about HTTP
beyond raising :class:`~gateway.errors.LoragError`, nor about API keys beyond :class:`Caller`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from gateway.errors import LoragError, invalid
from gateway.knowledge.service import Knowledge
from gateway.knowledge.vector_store_files import FileSource, StoreFiles, counts, store_chunking
from gateway.knowledge.vector_store_protocol import (
    FILE_ID_KEY,
    Content,
    Deleted,
    HybridSearch,
    Page,
    RankingOptions,
    SearchPage,
    SearchRequest,
    SearchResult,
    StoreCreate,
    StoreUpdate,
    VectorStore,
)
from rag.errors import InvalidName, KnowledgeBaseNotFound
from rag.query import RetrievalOptions
from rag.retriever import Hit, retrieve
from rag.splitter import ChunkingSettings
from rag.store import Manifest

STORE = "vector_store"
"""The key of a manifest's ``extra`` that holds the store's fields."""
DAY_S = 86400
ACTIVE_EVERY_S = 60
"""``last_active_at`` is written at most this often (each write rewrites kb.json)."""
T = TypeVar("T")


class Caller(Protocol):
    """Who calls: the gateway's ``Principal`` fits."""

    name: str
    admin: bool

    def may_use_kb(self, name: str) -> bool: ...


def fields(manifest: Manifest) -> dict:
    """The store's fields of a knowledge base's manifest (empty for one made through /v1/knowledge_bases)."""
    return dict(manifest.extra.get(STORE) or {})


def may_see(caller: Caller, manifest: Manifest) -> bool:
    """Whether ``caller`` may see and use this knowledge base or store: its owner and admins may, others not;
    a knowledge base without an owner, per the caller's scopes."""
    owner = fields(manifest).get("owner")
    if owner is not None and caller.name == owner:
        return True
    return (owner is None or caller.admin) and caller.may_use_kb(manifest.name)


def may_use(knowledge: Knowledge, name: str, caller: Caller) -> bool:
    """Whether ``caller`` may use the knowledge base (vector store) ``name``, per :func:`may_see`; False if there is
    none. For every door that names one: chat's ``<model>@<name>``, ``file_search``'s ``vector_store_ids``."""
    try:
        return may_see(caller, knowledge.bases.manifest(name))
    except (InvalidName, KnowledgeBaseNotFound):
        return False


def not_found(store_id: str) -> LoragError:
    return LoragError(404, f"No vector store found with id '{store_id}'.", param="vector_store_id",
                      code="vector_store_not_found")  # fmt: skip


def page(
    items: Sequence[T], id_of: Callable[[T], str], after: str | None, before: str | None, limit: int, order: str
) -> Page[T]:
    """OpenAI's cursor page of ``items`` (oldest first) in ``order``: after one id, before another, ``limit`` long."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [id_of(item) for item in ordered]
    start = ids.index(after) + 1 if after in ids else 0
    end = ids.index(before) if before in ids else len(ordered)
    window = ordered[start:end]
    data = window[-limit:] if before and not after else window[:limit]
    return Page[T](data=data, first_id=id_of(data[0]) if data else None, last_id=id_of(data[-1]) if data else None,
                   has_more=len(window) > len(data))  # fmt: skip


class VectorStores:
    """The vector stores of one gateway: its knowledge bases, with their files read from ``source``."""

    def __init__(self, knowledge: Knowledge, source: FileSource, clock: Callable[[], float] = time.time):
        self.knowledge, self.clock = knowledge, clock
        self.files = StoreFiles(knowledge, source, self)

    def manifest(self, store_id: str, caller: Caller) -> Manifest:
        """The store's manifest; 404 if there is none or ``caller`` may not see it."""
        try:
            manifest = self.knowledge.bases.manifest(store_id)
        except (InvalidName, KnowledgeBaseNotFound):
            raise not_found(store_id) from None
        if not may_see(caller, manifest):
            raise not_found(store_id)
        return manifest

    def usable(self, store_id: str, caller: Caller) -> Manifest:
        """The manifest of a store that may be searched or written: 400 ``vector_store_expired`` if it expired."""
        manifest = self.manifest(store_id, caller)
        if self.expired(manifest):
            raise LoragError(400, f"vector store '{store_id}' has expired", param="vector_store_id",
                             code="vector_store_expired")  # fmt: skip
        return manifest

    def expires_at(self, manifest: Manifest) -> int | None:
        store = fields(manifest)
        if not store.get("expires_after"):
            return None
        return int(store.get("last_active_at", manifest.created)) + store["expires_after"]["days"] * DAY_S

    def expired(self, manifest: Manifest) -> bool:
        expires_at = self.expires_at(manifest)
        return expires_at is not None and self.clock() >= expires_at

    def object(self, manifest: Manifest) -> VectorStore:
        store = fields(manifest)
        attachments = self.files.table(manifest.name)
        self.files.recover(manifest.name, attachments)
        file_counts = counts(attachments.all())
        status = "expired" if self.expired(manifest) else "in_progress" if file_counts.in_progress else "completed"
        return VectorStore(
            id=manifest.name, created_at=manifest.created, name=store.get("name") or manifest.name,
            usage_bytes=attachments.document_bytes(), file_counts=file_counts, status=status,
            expires_after=store.get("expires_after"), expires_at=self.expires_at(manifest),
            last_active_at=store.get("last_active_at", manifest.created), metadata=store.get("metadata") or {},
        )  # fmt: skip

    async def create(self, body: StoreCreate, caller: Caller) -> VectorStore:
        """A new knowledge base ``vs_<hex>`` owned by ``caller``; its files (checked first) are indexed after."""
        await self.sweep()
        self.files.check_sources(body.file_ids)
        store_id = f"vs_{uuid.uuid4().hex[:24]}"
        now = int(self.clock())
        extra = {STORE: {"name": body.name or "", "owner": caller.name, "metadata": body.metadata or {},
                         "description": body.description, "last_active_at": now, "created_ns": time.time_ns(),
                         "expires_after": body.expires_after.model_dump() if body.expires_after else None}}  # fmt: skip

        def work():
            embedder = self.knowledge.bases.embedder(self.knowledge.bases.default_embedder)
            default = ChunkingSettings.for_embedder(embedder.max_tokens)
            chunking = store_chunking(body.chunking_strategy, embedder.max_tokens) or default
            return self.knowledge.bases.create(store_id, chunking=chunking, extra=extra)

        kb = await asyncio.to_thread(work)
        if body.file_ids:
            await self.files.attach(store_id, [(file_id, None, None) for file_id in body.file_ids])
        return self.object(kb.manifest)

    async def list(self, caller: Caller, after: str | None, before: str | None, limit: int, order: str) -> Page:
        await self.sweep()
        manifests = [m for m in self.knowledge.manifests() if may_see(caller, m)]
        manifests.sort(key=lambda m: (fields(m).get("created_ns", m.created * 10**9), m.name))
        found = page(manifests, lambda m: m.name, after, before, limit, order)
        return Page[VectorStore](**{**found.model_dump(exclude={"data"}), "data": [self.object(m) for m in found.data]})

    async def retrieve(self, store_id: str, caller: Caller) -> VectorStore:
        return self.object(self.manifest(store_id, caller))

    async def update(self, store_id: str, body: StoreUpdate, caller: Caller) -> VectorStore:
        """Change the name, metadata or expiry (``expires_after: null`` removes it); what is left out is kept."""
        manifest = self.manifest(store_id, caller)
        store = fields(manifest)
        given = body.model_fields_set
        if "name" in given:
            store["name"] = body.name or ""
        if "metadata" in given:
            store["metadata"] = body.metadata or {}
        if "expires_after" in given:
            store["expires_after"] = body.expires_after.model_dump() if body.expires_after else None
        store["last_active_at"] = int(self.clock())
        kb = await self.knowledge.get(store_id)
        return self.object(await asyncio.to_thread(kb.set_extra, {STORE: store}))

    async def delete(self, store_id: str, caller: Caller) -> Deleted:
        """Delete the knowledge base: every file's documents, chunks and indexes."""
        self.manifest(store_id, caller)
        await self.knowledge.delete(store_id)
        return Deleted(id=store_id, object="vector_store.deleted")

    async def touch(self, store_id: str) -> None:
        """Record activity on the store (at most every ACTIVE_EVERY_S): it keeps an expiry away."""
        kb = await self.knowledge.get(store_id)
        store, now = fields(kb.manifest), int(self.clock())
        if now - int(store.get("last_active_at", kb.manifest.created)) >= ACTIVE_EVERY_S:
            await asyncio.to_thread(kb.set_extra, {STORE: {**store, "last_active_at": now}})

    async def search(self, store_id: str, body: SearchRequest) -> SearchPage:
        """The chunks best matching the query (each of several queries; a chunk found twice counts once, best score
        kept); ``ranker: none`` ranks by embeddings alone, else dense and BM25 are fused (``hybrid_search`` weights)."""
        options = body.ranking_options or RankingOptions()
        weights = options.hybrid_search or HybridSearch()
        if body.rewrite_query:
            raise invalid("rewrite_query", "lorag does not rewrite queries: leave rewrite_query out or false")
        if weights.embedding_weight + weights.text_weight <= 0:
            raise invalid("ranking_options.hybrid_search", "embedding_weight and text_weight must not both be 0")
        kb, queries = await self.knowledge.get(store_id), body.queries()

        retrieval = RetrievalOptions(
            top_k=body.max_num_results, mode="dense" if options.ranker == "none" else "hybrid",
            min_score=options.score_threshold or None, filters=body.filters or None,
            dense_weight=weights.embedding_weight, bm25_weight=weights.text_weight,
        )  # fmt: skip

        def work() -> list[Hit]:
            best: dict[int, Hit] = {}
            for query in queries:
                for hit in retrieve(kb, query, retrieval):
                    if hit.chunk_id not in best or hit.score > best[hit.chunk_id].score:
                        best[hit.chunk_id] = hit
            return sorted(best.values(), key=lambda hit: -hit.score)[: body.max_num_results]

        hits = await asyncio.to_thread(work)
        await self.touch(store_id)
        return SearchPage(search_query=queries, data=[result(hit) for hit in hits])

    async def sweep(self) -> list[str]:
        """Delete every expired store; the ids deleted."""
        doomed = [m.name for m in self.knowledge.manifests() if self.expired(m)]
        for name in doomed:
            try:
                await self.knowledge.delete(name)
            except KnowledgeBaseNotFound:
                pass  # deleted meanwhile
        return doomed


def result(hit: Hit) -> SearchResult:
    """A retrieved chunk as OpenAI's search result: a document uploaded without a file is cited by its id."""
    attributes = {k: v for k, v in hit.metadata.items() if k != FILE_ID_KEY and isinstance(v, str | int | float)}
    return SearchResult(file_id=hit.metadata.get(FILE_ID_KEY, hit.document_id), filename=hit.filename,
                        score=hit.score, attributes=attributes, content=[Content(text=hit.text)])  # fmt: skip
