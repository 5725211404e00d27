"""A vector store's files and file batches: attached from ``/v1/files``, indexed in the background.

Attaching a file records it (the knowledge base's attachments: ``rag.attachments`` in its SQLite
on the folder backend, ``rag.milvus_attachments`` on Milvus) as ``in_progress`` and starts a task
that loads, cuts, embeds and adds its documents, each with the file's attributes and its id
(metadata key ``file_id``) as metadata; the file then is ``completed``, or ``failed`` with
``last_error`` (``unsupported_file``, ``invalid_file``, ``server_error``) and none of its documents
in the index. A document's content hash is keyed with the file id, so the same bytes attached as
two files are two documents, and indexing a file again (a restart while it was in progress:
:meth:`StoreFiles.recover`) adds nothing twice. On Milvus a gateway does not index again a file
that another live gateway is indexing (``abandoned``), and of a file two gateways indexed the
documents stay once either completes it. Attaching a file that is in progress or completed
changes nothing (its attributes change with :meth:`StoreFiles.update`); a failed or cancelled one
is indexed again. Deleting a file removes its documents from the index; cancelling a batch marks
its unfinished files ``cancelled`` and whatever their tasks still add is removed. The caller
checks who may see the store; this module knows nothing about HTTP beyond raising
:class:`~gateway.errors.LoragError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from gateway.errors import LoragError
from gateway.knowledge.service import Knowledge
from gateway.knowledge.vector_store_protocol import (
    FILE_ID_KEY,
    BatchCreate,
    ChunkingStrategy,
    Content,
    ContentPage,
    Deleted,
    FileBatch,
    FileCounts,
    VectorStoreFile,
)
from rag.attachments import Attachment
from rag.backend import AttachmentsLike, KnowledgeBaseLike
from rag.errors import KnowledgeBaseNotFound, LoaderError, UnsupportedFileType
from rag.loaders import load_document
from rag.splitter import ChunkingSettings

log = logging.getLogger(__name__)
FileSource = Callable[[str], tuple[str, Path]]
"""A file id of /v1/files -> its filename and where its bytes are; raises a 404 LoragError if there is none."""
Item = tuple[str, dict[str, Any] | None, ChunkingStrategy | None]
"""A file to attach: its id, attributes and chunking strategy."""


def store_chunking(strategy: ChunkingStrategy | None, max_tokens: int) -> ChunkingSettings | None:
    """lorag's chunking for OpenAI's strategy: None for auto (the knowledge base's); a static one cut to what the
    embedder reads, the overlap scaled with it."""
    if strategy is None or strategy.static is None:
        return None
    return ChunkingSettings(strategy.static.max_chunk_size_tokens, strategy.static.chunk_overlap_tokens).fitted(
        max_tokens
    )


def counts(attachments: Iterable[Attachment]) -> FileCounts:
    found = FileCounts()
    for attachment in attachments:
        setattr(found, attachment.status, getattr(found, attachment.status) + 1)
        found.total += 1
    return found


def completed(table: AttachmentsLike, file_id: str) -> bool:
    """Whether the file is attached and completed (by this gateway's task or, on Milvus, another's)."""
    found = table.get(file_id)
    return found is not None and found.status == "completed"


def file_not_found(store_id: str, file_id: str) -> LoragError:
    return LoragError(404, f"No file found with id '{file_id}' in vector store '{store_id}'.", param="file_id",
                      code="file_not_found")  # fmt: skip


class StoreFiles:
    """Files of the vector stores over ``knowledge``, read from ``source``; ``stores`` records activity."""

    def __init__(self, knowledge: Knowledge, source: FileSource, stores: Any):
        self.knowledge, self.source, self.stores = knowledge, source, stores
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._recovered: set[str] = set()

    def table(self, store_id: str) -> AttachmentsLike:
        """The store's attachments, kept by its knowledge base's backend."""
        return self.knowledge.bases.attachments(store_id)

    def check_sources(self, file_ids: Iterable[str]) -> None:
        """404 for the first file id that /v1/files does not hold (before anything is attached)."""
        for file_id in file_ids:
            self.source(file_id)

    def recover(self, store_id: str, table: AttachmentsLike | None = None) -> None:
        """Once per process and store: index again the files a stopped gateway left in progress."""
        if store_id not in self._recovered:
            self._recovered.add(store_id)
            for attachment in (table or self.table(store_id)).abandoned():
                self._start(store_id, attachment)

    async def attach(self, store_id: str, items: Sequence[Item], batch: str | None = None) -> list[Attachment]:
        """Record each file as in progress (after checking every one exists) and start indexing it."""
        self.check_sources(file_id for file_id, _, _ in items)
        kb = await self.knowledge.get(store_id)
        table = self.table(store_id)
        self.recover(store_id, table)
        made = []
        for file_id, attributes, strategy in items:
            existing = table.get(file_id)
            if existing is not None and existing.status in ("in_progress", "completed"):
                made.append(table.put(replace(existing, batch=batch)) if batch else existing)
                continue
            chunking = store_chunking(strategy, kb.embedder.max_tokens) or kb.manifest.chunking
            attachment = Attachment(file_id, int(self.stores.clock()), "in_progress", batch, self.source(file_id)[0],
                                    dict(attributes or {}), asdict(chunking))  # fmt: skip
            made.append(table.put(attachment))
            self._start(store_id, attachment)
        await self.stores.touch(store_id)
        return made

    def _start(self, store_id: str, attachment: Attachment) -> None:
        key = (store_id, attachment.id)
        if key in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._ingest(store_id, attachment))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def _ingest(self, store_id: str, attachment: Attachment) -> None:
        try:
            table = self.table(store_id)
            kb = await self.knowledge.get(store_id)
        except (KnowledgeBaseNotFound, sqlite3.Error):
            return  # the store was deleted meanwhile
        try:
            usage = await asyncio.to_thread(self._index, kb, table, attachment.id, self.source(attachment.id)[1])
        except UnsupportedFileType as e:
            error = {"code": "unsupported_file", "message": str(e)}
        except (LoaderError, LoragError) as e:
            error = {"code": "invalid_file", "message": getattr(e, "message", str(e))}
        except Exception as e:  # an embedder or disk failure: the file failed, the gateway goes on
            log.exception("indexing file %s of vector store %s failed", attachment.id, store_id)
            error = {"code": "server_error", "message": f"indexing failed: {type(e).__name__}: {e}"}
        else:

            async def complete(store_id: str, file_id: str) -> None:
                if not table.finish(file_id, "completed", usage) and not completed(table, file_id):
                    await self._remove(store_id, file_id)  # cancelled or deleted meanwhile

            return await self._quietly(store_id, attachment.id, [complete])
        try:
            if completed(table, attachment.id):  # by another gateway: the documents are its own
                return
        except (KnowledgeBaseNotFound, sqlite3.Error):
            return  # the store was deleted meanwhile
        # remove what was made (SQLite first: a stale index file is repaired on open), then record why
        await self._quietly(store_id, attachment.id, [self._remove, lambda s, f: self._fail(table, f, error)])

    async def _quietly(self, store_id: str, file_id: str, steps: list) -> None:
        for step in steps:
            try:
                await step(store_id, file_id)
            except (KnowledgeBaseNotFound, sqlite3.Error):
                return  # the store was deleted meanwhile
            except Exception:
                log.exception("cleaning up after file %s of vector store %s failed", file_id, store_id)

    async def _fail(self, table: AttachmentsLike, file_id: str, error: dict[str, str]) -> None:
        table.finish(file_id, "failed", error=error)

    def _index(self, kb: KnowledgeBaseLike, table: AttachmentsLike, file_id: str, path: Path) -> int:
        """Add the file's documents unless it is no longer in progress; the bytes they use."""
        current = table.get(file_id)
        if current is None or current.status != "in_progress":
            return 0
        documents = [
            replace(doc, sha256=hashlib.sha256(f"{doc.sha256}:{file_id}".encode()).hexdigest(),
                    metadata={**doc.metadata, **current.attributes, FILE_ID_KEY: file_id})
            for doc in load_document(current.filename, path.read_bytes(), limits=self.knowledge.limits)
        ]  # fmt: skip
        chunking = ChunkingSettings(**current.chunking) if current.chunking else None
        return sum(record.size for record in kb.add_documents(documents, chunking=chunking))

    async def _remove(self, store_id: str, file_id: str) -> None:
        kb = await self.knowledge.get(store_id)

        def work() -> None:
            for document_id in kb.database.document_ids({FILE_ID_KEY: file_id}):
                kb.delete_document(document_id)

        await asyncio.to_thread(work)

    def get(self, store_id: str, file_id: str) -> Attachment:
        found = self.table(store_id).get(file_id)
        if found is None:
            raise file_not_found(store_id, file_id)
        return found

    def object(self, store_id: str, attachment: Attachment) -> VectorStoreFile:
        chunking = attachment.chunking or {}
        static = {
            "max_chunk_size_tokens": chunking.get("chunk_size"),
            "chunk_overlap_tokens": chunking.get("chunk_overlap"),
        }
        return VectorStoreFile(
            id=attachment.id, usage_bytes=attachment.usage_bytes, created_at=attachment.created,
            vector_store_id=store_id, status=attachment.status, last_error=attachment.error,
            chunking_strategy={"type": "static", "static": static} if chunking else {"type": "other"},
            attributes=attachment.attributes,
        )  # fmt: skip

    def all(self, store_id: str, status: str | None = None, batch: str | None = None) -> list[VectorStoreFile]:
        self.recover(store_id)
        return [self.object(store_id, a) for a in self.table(store_id).all(status, batch)]

    async def update(self, store_id: str, file_id: str, attributes: dict[str, Any] | None) -> VectorStoreFile:
        """New attributes for the file and, at once, in the metadata of its documents (what filters see)."""
        old = self.get(store_id, file_id)
        new = self.table(store_id).put(replace(old, attributes=dict(attributes or {})))
        kb = await self.knowledge.get(store_id)

        def work() -> None:
            for document_id in kb.database.document_ids({FILE_ID_KEY: file_id}):
                kept = {k: v for k, v in kb.document(document_id).metadata.items() if k not in old.attributes}
                kb.database.set_metadata(document_id, {**kept, **new.attributes, FILE_ID_KEY: file_id})

        await asyncio.to_thread(work)
        return self.object(store_id, new)

    async def delete(self, store_id: str, file_id: str) -> Deleted:
        """Remove the file's documents from SQLite and both indexes, then the file (the /v1/files file stays)."""
        table = self.table(store_id)
        self.get(store_id, file_id)
        await self._remove(store_id, file_id)
        table.delete(file_id)
        return Deleted(id=file_id, object="vector_store.file.deleted")

    async def content(self, store_id: str, file_id: str) -> ContentPage:
        """The text of the file's documents as they were parsed (one item per document: a JSON record each)."""
        self.get(store_id, file_id)
        kb = await self.knowledge.get(store_id)
        ids = kb.database.document_ids({FILE_ID_KEY: file_id})
        texts = kb.database.texts(ids)
        return ContentPage(data=[Content(text=texts[i]) for i in ids if i in texts])

    # batches

    async def create_batch(self, store_id: str, body: BatchCreate) -> FileBatch:
        items = [(item.file_id, item.attributes, item.chunking_strategy) for item in body.items()]
        self.check_sources(file_id for file_id, _, _ in items)
        batch_id = f"vsfb_{uuid.uuid4().hex[:24]}"
        self.table(store_id).add_batch(batch_id, int(self.stores.clock()))
        await self.attach(store_id, items, batch=batch_id)
        return self.batch(store_id, batch_id)

    def batch(self, store_id: str, batch_id: str) -> FileBatch:
        table = self.table(store_id)
        found = table.batch(batch_id)
        if found is None:
            raise LoragError(404, f"No file batch found with id '{batch_id}' in vector store '{store_id}'.",
                             param="batch_id", code="batch_not_found")  # fmt: skip
        self.recover(store_id, table)
        file_counts = counts(table.all(batch=batch_id))
        if found.cancelled:
            status = "cancelled"
        elif file_counts.in_progress:
            status = "in_progress"
        else:
            status = "failed" if file_counts.total and file_counts.failed == file_counts.total else "completed"
        return FileBatch(id=batch_id, created_at=found.created, vector_store_id=store_id, status=status,
                         file_counts=file_counts)  # fmt: skip

    async def cancel_batch(self, store_id: str, batch_id: str) -> FileBatch:
        """Cancel the files of the batch still in progress; what their tasks add is removed when they end."""
        self.batch(store_id, batch_id)
        self.table(store_id).cancel_batch(batch_id)
        return self.batch(store_id, batch_id)
