"""Knowledge bases as the gateway serves them: the ``rag`` package behind async calls.

:class:`Knowledge` wraps the knowledge bases of either backend (:class:`rag.backend.KnowledgeBasesLike`:
the folder or Milvus, as the settings choose): every call that reads files or runs
the embedder goes to a worker thread, so the event loop keeps streaming other requests while a
document is embedded. rag's typed errors (``rag.errors``) pass through, and the gateway maps
them in one table (:data:`gateway.errors.LAYER_ERRORS`); a name that cannot be a knowledge
base is simply not found. An upload of several files is parsed completely before anything is
stored, and its documents are then added in one transaction: one bad file and nothing of the
upload is kept. Chunking settings are checked against the embedder (a chunk size over what it
reads is 400 ``chunk_tokens``). :meth:`Knowledge.update` changes a knowledge base's embedder
or chunking. :meth:`Knowledge.augment` is the RAG step of a chat: retrieve for the last user
turn, put the instruction and the numbered sources into the system turn, return the
citations. This module knows nothing about routes, engines' internals or API keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.errors import LoragError, invalid, too_large
from gateway.knowledge.backends import open_bases
from gateway.knowledge.retrieval import Retrieval
from gateway.settings import Settings
from rag.augment import Citation, citations_of, system_prompt
from rag.backend import KnowledgeBaseLike, KnowledgeBasesLike
from rag.database import DocumentRecord
from rag.embedder import Embedder
from rag.errors import DocumentNotFound, InvalidName, KnowledgeBaseNotFound
from rag.loaders import DEFAULT_LIMITS, Document, load_document
from rag.office_files import MIB, Limits
from rag.retriever import Hit, retrieve
from rag.splitter import ChunkingSettings
from rag.store import Manifest, validate_name
from serve.engine import Message


@dataclass(frozen=True)
class Upload:
    """One uploaded file."""

    filename: str
    data: bytes


class Knowledge:
    """The knowledge bases under one folder, for concurrent async callers."""

    def __init__(self, bases: KnowledgeBasesLike, max_upload_bytes: int, limits: Limits = DEFAULT_LIMITS):
        self.bases = bases
        self.max_upload_bytes = max_upload_bytes
        self.limits = limits

    @classmethod
    def from_settings(cls, settings: Settings, bases: KnowledgeBasesLike | None = None) -> Knowledge:
        """The knowledge bases the settings choose (``gateway.knowledge.backends``), or ``bases``, with the
        configured upload limits."""
        bases = bases or open_bases(settings)
        limits = Limits(int(settings.max_unpacked_mb * MIB), int(settings.max_text_mb * MIB))
        return cls(bases, int(settings.max_upload_mb * MIB), limits)

    async def create(
        self, name: str, embedder: str | None = None, chunk_size: int | None = None, chunk_overlap: int | None = None
    ) -> KnowledgeBaseLike:
        validate_name(name)
        embedder = embedder or self.bases.default_embedder

        def work() -> KnowledgeBaseLike:
            loaded = self._embedder(embedder)
            default = ChunkingSettings.for_embedder(loaded.max_tokens)
            chunking = chunking_for(loaded, chunk_size, chunk_overlap, default)
            return self.bases.create(name, embedder=embedder, chunking=chunking)

        return await asyncio.to_thread(work)

    async def update(
        self,
        name: str,
        embedder: str | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        progress: bool = False,
    ) -> KnowledgeBaseLike:
        """Give a knowledge base another embedder or chunking: every document is cut again and re-embedded.

        Without chunk settings the current ones are kept, the chunk size cut to what the new
        embedder reads if it is larger (the overlap scaled with it). An embedder that cannot be
        loaded or a chunk size over its input is 400, and the knowledge base stays as it was.
        """
        kb = await self.get(name)

        def work() -> KnowledgeBaseLike:
            loaded = self._embedder(embedder) if embedder else kb.embedder
            chunking = chunking_for(loaded, chunk_size, chunk_overlap, kb.manifest.chunking)
            return self.bases.set_embedder(name, embedder, chunking=chunking, progress=progress)

        return await asyncio.to_thread(work)

    def _embedder(self, embedder_id: str) -> Embedder:
        """The embedder with this id or path; rag's EmbedderUnavailable if it cannot be loaded."""
        return self.bases.embedder(embedder_id)

    def names(self) -> list[str]:
        return [manifest.name for manifest in self.bases.list()]

    def counts(self, name: str) -> tuple[int, int]:
        """(documents, chunks) of a knowledge base, read without opening its indexes."""
        return self.bases.counts(name)

    def manifests(self) -> list[Manifest]:
        return self.bases.list()

    async def get(self, name: str) -> KnowledgeBaseLike:
        """The open knowledge base; KnowledgeBaseNotFound if there is none by that name."""
        try:
            return await asyncio.to_thread(self.bases.get, name)
        except InvalidName:
            raise KnowledgeBaseNotFound(name) from None

    async def delete(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.bases.delete, name)
        except InvalidName:
            raise KnowledgeBaseNotFound(name) from None

    async def add(
        self, name: str, uploads: Sequence[Upload], metadata: Mapping[str, Any] | None = None, progress: bool = False
    ) -> list[DocumentRecord]:
        """Parse every file, then add all their documents at once; the records, in upload order."""
        kb = await self.get(name)
        if not uploads:
            raise invalid("files", "no files: send one or more as the multipart field 'files'")
        for upload in uploads:
            if len(upload.data) > self.max_upload_bytes:
                raise too_large(upload.filename, self.max_upload_bytes)

        def work() -> list[DocumentRecord]:
            documents: list[Document] = []
            for upload in uploads:
                documents += load_document(upload.filename, upload.data, limits=self.limits)
            if metadata:
                documents = [replace(doc, metadata={**doc.metadata, **metadata}) for doc in documents]
            return kb.add_documents(documents, progress=progress)

        return await asyncio.to_thread(work)

    async def documents(self, name: str) -> list[DocumentRecord]:
        kb = await self.get(name)
        return await asyncio.to_thread(kb.documents)

    async def delete_document(self, name: str, document_id: str) -> None:
        kb = await self.get(name)
        try:
            await asyncio.to_thread(kb.delete_document, document_id)
        except DocumentNotFound:
            raise DocumentNotFound(document_id, name) from None

    async def search(self, retrieval: Retrieval, query: str) -> list[Hit]:
        kb = await self.get(retrieval.kb)
        return await asyncio.to_thread(retrieve, kb, query, retrieval.options())

    async def augment(self, retrieval: Retrieval, messages: list[Message]) -> tuple[list[Message], list[Citation]]:
        """``messages`` with the instruction and the sources for their last user turn in the system turn (after
        the conversation's own system message, if any), and the citations; unchanged if nothing is retrieved."""
        asked = [message.content for message in messages if message.role == "user"]
        if not asked:
            raise invalid("messages", "retrieval needs a user message to retrieve for")
        hits = await self.search(retrieval, asked[-1])
        if not hits:
            return messages, []
        own = messages[0].content if messages and messages[0].role == "system" else None
        system = Message("system", system_prompt(hits, own))
        return [system, *messages[own is not None :]], citations_of(hits)

    async def embed(self, embedder_id: str, texts: list[str]) -> tuple[Any, int]:
        """Vectors for ``texts`` (float32, unit length) and the tokens read; 400 ``context_length_exceeded`` for a
        text longer than the embedder reads (it would be cut short silently), before anything is embedded."""
        embedder = self.bases.embedder(embedder_id)

        def work():
            counts = [embedder.count_tokens(text) for text in texts]
            for index, count in enumerate(counts):
                if count > embedder.max_tokens:
                    message = (
                        f"input[{index}] is {count} tokens, over the {embedder.max_tokens} tokens that "
                        f"'{embedder.id}' reads; split it into shorter texts"
                    )
                    raise LoragError(400, message, param="input", code="context_length_exceeded")
            return embedder.embed(texts), sum(counts)

        return await asyncio.to_thread(work)


def chunking_for(
    embedder: Embedder, chunk_size: int | None, chunk_overlap: int | None, current: ChunkingSettings
) -> ChunkingSettings:
    """The chunking asked for: `current` fitted to `embedder` when neither size nor overlap is given;
    a size given without an overlap overlaps by an eighth. 400 ``chunk_tokens`` for a size over the embedder's
    input; rag's InvalidChunking for settings that cannot work."""
    limit = embedder.max_tokens
    if chunk_size is not None and chunk_size > limit:
        raise invalid(
            "chunk_tokens",
            f"chunk_tokens is {chunk_size}, over the {limit} tokens that embedder '{embedder.id}' reads "
            f"(longer chunks would be cut short when embedded); use at most {limit}",
        )
    fitted = current.fitted(limit)
    if chunk_size is None and chunk_overlap is None:
        return fitted
    size = fitted.chunk_size if chunk_size is None else chunk_size
    overlap = size // 8 if chunk_overlap is None else chunk_overlap
    return ChunkingSettings(size, overlap)
