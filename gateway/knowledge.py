"""Knowledge bases as the gateway serves them: the ``rag`` package behind async calls and OpenAI-shaped errors.

:class:`Knowledge` wraps :class:`rag.store.KnowledgeBases`: every call that reads files or runs
the embedder goes to a worker thread, so the event loop keeps streaming other requests while a
document is embedded. The ``rag`` package's exceptions become :class:`~gateway.errors.LoragError`
with the status a client expects (404 unknown knowledge base or document, 409 name taken, 413
file over the size limit, 415 unsupported type, 400 unreadable file). An upload of several
files is parsed completely before anything is stored, and its documents are then added in one
transaction: one bad file and nothing of the upload is kept. Chunking settings are checked
against the embedder (a chunk size over what it reads is 400 ``chunk_tokens``), and
:class:`Retrieval` checks its filters, so a search, a RAG chat and the CLI refuse a bad filter
alike (400 ``filters``). :meth:`Knowledge.update` changes a knowledge base's embedder or
chunking. :meth:`Knowledge.augment` is the RAG step of a chat: retrieve for the last user turn,
number the sources into the system turn (``rag.augment``), return the citations. This module knows nothing about routes,
engines or API keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import AfterValidator

from gateway.errors import LoragError, invalid
from rag.augment import Citation, augment, query_text
from rag.database import ChunkDatabase, DocumentRecord, NotFound, check_filters
from rag.embedder import Embedder
from rag.loaders import Document, LoaderError, UnsupportedFileType, load_document
from rag.retriever import Hit, Mode, retrieve
from rag.splitter import ChunkingSettings
from rag.store import DATABASE, AlreadyExists, KnowledgeBase, KnowledgeBases, Manifest, validate_name
from serve.engine import Message

DEFAULT_TOP_K = 4
"""Sources a RAG chat puts into the prompt, and what a search returns, unless the request says otherwise."""


@dataclass(frozen=True)
class Upload:
    """One uploaded file."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Retrieval:
    """How a chat retrieves: the knowledge base and the retriever's options."""

    kb: str
    top_k: int = DEFAULT_TOP_K
    mode: Mode = "hybrid"
    min_score: float | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            check_filters(self.filters)
        except ValueError as e:
            raise invalid("filters", str(e)) from None


def _checked_filters(filters: dict[str, Any]) -> dict[str, Any]:
    check_filters(filters)
    return filters


Filters = Annotated[dict[str, Any], AfterValidator(_checked_filters)]
"""A request field of retrieval filters: "filename", "document_id" or a metadata key -> a value
(string, number, boolean) or a list of them; anything else is refused as the request is read."""


class Knowledge:
    """The knowledge bases under one folder, for concurrent async callers."""

    def __init__(self, bases: KnowledgeBases, max_upload_bytes: int):
        self.bases = bases
        self.max_upload_bytes = max_upload_bytes

    async def create(
        self, name: str, embedder: str | None = None, chunk_size: int | None = None, chunk_overlap: int | None = None
    ) -> KnowledgeBase:
        try:
            validate_name(name)
        except ValueError as e:
            raise invalid("name", str(e)) from None
        embedder = embedder or self.bases.default_embedder

        def work() -> KnowledgeBase:
            loaded = self._embedder(embedder)
            default = ChunkingSettings.for_embedder(loaded.max_tokens)
            chunking = chunking_for(loaded, chunk_size, chunk_overlap, default)
            return self.bases.create(name, embedder=embedder, chunking=chunking)

        try:
            return await asyncio.to_thread(work)
        except AlreadyExists:
            raise LoragError(409, f"a knowledge base named '{name}' already exists", param="name",
                             code="knowledge_base_exists") from None  # fmt: skip

    async def update(
        self,
        name: str,
        embedder: str | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        progress: bool = False,
    ) -> KnowledgeBase:
        """Give a knowledge base another embedder or chunking: every document is cut again and re-embedded.

        Without chunk settings the current ones are kept, the chunk size cut to what the new
        embedder reads if it is larger (the overlap scaled with it). An embedder that cannot be
        loaded or a chunk size over its input is 400, and the knowledge base stays as it was.
        """
        kb = await self.get(name)

        def work() -> KnowledgeBase:
            loaded = self._embedder(embedder) if embedder else kb.embedder
            chunking = chunking_for(loaded, chunk_size, chunk_overlap, kb.manifest.chunking)
            return self.bases.set_embedder(name, embedder, chunking=chunking, progress=progress)

        return await asyncio.to_thread(work)

    def _embedder(self, embedder_id: str) -> Embedder:
        """The embedder with this id or path; 400 ``embedder`` if it cannot be loaded."""
        try:
            return self.bases.embedder(embedder_id)
        except (OSError, ImportError, ValueError) as e:
            raise invalid("embedder", f"cannot load embedder '{embedder_id}': {e}") from None

    def names(self) -> list[str]:
        return [manifest.name for manifest in self.bases.list()]

    def counts(self, name: str) -> tuple[int, int]:
        """(documents, chunks) of a knowledge base, read from its database without opening its indexes."""
        return ChunkDatabase(self.bases.root / name / DATABASE).counts()

    def manifests(self) -> list[Manifest]:
        return self.bases.list()

    async def get(self, name: str) -> KnowledgeBase:
        """The open knowledge base; 404 ``knowledge_base_not_found`` if there is none by that name."""
        try:
            return await asyncio.to_thread(self.bases.get, name)
        except (NotFound, ValueError):
            raise kb_not_found(name) from None

    async def delete(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.bases.delete, name)
        except (NotFound, ValueError):
            raise kb_not_found(name) from None

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
                documents += load_document(upload.filename, upload.data)
            if metadata:
                documents = [replace(doc, metadata={**doc.metadata, **metadata}) for doc in documents]
            return kb.add_documents(documents, progress=progress)

        try:
            return await asyncio.to_thread(work)
        except UnsupportedFileType as e:
            raise LoragError(415, str(e), param="files", code="unsupported_file_type") from None
        except LoaderError as e:
            raise LoragError(400, str(e), param="files", code="unreadable_document") from None

    async def documents(self, name: str) -> list[DocumentRecord]:
        kb = await self.get(name)
        return await asyncio.to_thread(kb.documents)

    async def delete_document(self, name: str, document_id: str) -> None:
        kb = await self.get(name)
        try:
            await asyncio.to_thread(kb.delete_document, document_id)
        except NotFound:
            raise LoragError(404, f"knowledge base '{name}' has no document '{document_id}'",
                             code="document_not_found") from None  # fmt: skip

    async def search(self, retrieval: Retrieval, query: str) -> list[Hit]:
        kb = await self.get(retrieval.kb)
        try:
            return await asyncio.to_thread(
                retrieve, kb, query, top_k=retrieval.top_k, mode=retrieval.mode,
                min_score=retrieval.min_score, filters=retrieval.filters,
            )  # fmt: skip
        except ValueError as e:  # a bad filter key or mode
            raise invalid("filters" if "filter" in str(e) else "mode", str(e)) from None

    async def augment(self, retrieval: Retrieval, messages: list[Message]) -> tuple[list[Message], list[Citation]]:
        """``messages`` with the sources for their last user turn numbered into the system turn, and the citations."""
        plain = [{"role": m.role, "content": m.content} for m in messages]
        try:
            query = query_text(plain)
        except ValueError:
            raise invalid("messages", "retrieval needs a user message to retrieve for") from None
        hits = await self.search(retrieval, query)
        augmented, citations = augment(plain, hits)
        return [Message(m["role"], m["content"]) for m in augmented], citations

    async def embed(self, embedder_id: str, texts: list[str]) -> tuple[Any, int]:
        """Vectors for ``texts`` (float32, unit length) and the tokens read."""
        embedder = self.bases.embedder(embedder_id)

        def work():
            return embedder.embed(texts), sum(embedder.count_tokens(text) for text in texts)

        return await asyncio.to_thread(work)


def chunking_for(
    embedder: Embedder, chunk_size: int | None, chunk_overlap: int | None, current: ChunkingSettings
) -> ChunkingSettings:
    """The chunking asked for: `current` fitted to `embedder` when neither size nor overlap is given;
    a size given without an overlap overlaps by an eighth. 400 for a size over the embedder's input
    or an overlap not under the size."""
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
    try:
        return ChunkingSettings(size, overlap)
    except ValueError as e:
        raise invalid("chunk_tokens" if size < 8 else "chunk_overlap", str(e)) from None


def kb_not_found(name: str) -> LoragError:
    return LoragError(404, f"no knowledge base named '{name}'", code="knowledge_base_not_found")


def too_large(filename: str, limit: int) -> LoragError:
    return LoragError(
        413, f"{filename}: over the upload limit of {limit / 2**20:g} MiB", param="files", code="file_too_large"
    )
