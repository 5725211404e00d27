"""Copy a knowledge base from one backend to the other (folder <-> Milvus) without embedding anything again.

`migrate(source, target_bases, attachments)` creates the knowledge base of the same name in
`target_bases` with the source's embedder, chunking and `extra`, and copies every document (its text
and segments, metadata, content hash) with its chunks and their stored vectors; BM25 is rebuilt by
the target from the chunk texts. It then checks that the target holds as many documents and chunks
as the source and raises `MigrationMismatch` if not. Given the source's attachments (a vector
store's files), it copies them too, in order, with their batches (a batch no file is in is not
copied). Document ids are the target backend's (Milvus derives them from the content hash), so ids
change; chunk texts, offsets and vectors do not. The source is not changed (but for the empty
attachment tables a folder makes on first use). This module knows nothing about settings or the
command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from rag.backend import AttachmentsLike, KnowledgeBaseLike, KnowledgeBasesLike
from rag.database import ChunkRecord, DocumentRecord
from rag.errors import RagError
from rag.folder import save_indexes
from rag.loaders import Document
from rag.splitter import Chunk
from rag.store import KnowledgeBase

BATCH_DOCUMENTS = 200
"""Documents read and written per step (their chunks and vectors held in memory at once)."""


class MigrationMismatch(RagError, RuntimeError):
    """The target holds other counts than the source after a copy."""


Copied = tuple[Document, list[Chunk], np.ndarray]


def migrate(
    source: KnowledgeBaseLike, target_bases: KnowledgeBasesLike, attachments: AttachmentsLike | None = None
) -> tuple[int, int]:
    """Copy `source` (and its `attachments`) into a new knowledge base of the same name in `target_bases`;
    (documents, chunks) copied."""
    manifest = source.manifest
    target = target_bases.create(manifest.name, embedder=manifest.embedder, chunking=manifest.chunking,
                                 extra=manifest.extra)  # fmt: skip
    for batch in _read(source):
        _write(target, batch)
    wanted, got = source.database.counts(), target.database.counts()
    if wanted != got:
        raise MigrationMismatch(f"{manifest.name}: the source holds {wanted[0]} documents in {wanted[1]} chunks, "
                                f"the copy {got[0]} in {got[1]}")  # fmt: skip
    if attachments is not None:
        _copy_attachments(attachments, target_bases.attachments(manifest.name))
    return got


def _copy_attachments(source: AttachmentsLike, target: AttachmentsLike) -> None:
    files = source.all()
    for batch_id in dict.fromkeys(a.batch for a in files if a.batch):
        if (batch := source.batch(batch_id)) is not None:
            target.add_batch(batch.id, batch.created)
            if batch.cancelled:
                target.cancel_batch(batch.id)
    for attachment in files:
        target.put(attachment)


def _read(kb: Any) -> Iterator[list[Copied]]:
    records = kb.database.documents()
    folder = isinstance(kb, KnowledgeBase)
    vectors, stored = (kb.dense.vectors(), kb.database.sources()) if folder else (None, None)
    for start in range(0, len(records), BATCH_DOCUMENTS):
        batch = records[start : start + BATCH_DOCUMENTS]
        ids = [record.id for record in batch]
        sources = {i: stored.get(i) for i in ids} if folder else kb.database.sources(ids)
        if folder:
            chunks = [c for c in kb.database.chunks().values() if c.document_id in sources]
            by_id = {c.id: vectors[c.id] for c in chunks}
        else:
            chunks, by_id = kb.chunks_of([record.id for record in batch])
        grouped: dict[str, list[ChunkRecord]] = {}
        for c in sorted(chunks, key=lambda c: c.ordinal):
            grouped.setdefault(c.document_id, []).append(c)
        yield [_copied(record, sources.get(record.id), grouped.get(record.id, []), by_id) for record in batch]


def _copied(record: DocumentRecord, source: Document | None, chunks: list[ChunkRecord], vectors: dict) -> Copied:
    document = source or Document(record.filename, "", (), record.sha256, record.size, record.metadata)
    document = Document(record.filename, document.text, document.segments, record.sha256, record.size,
                        record.metadata)  # fmt: skip
    cut = [Chunk(c.ordinal, c.text, c.start, c.end, c.page, c.section) for c in chunks]
    return document, cut, np.asarray([vectors[c.id] for c in chunks], dtype=np.float32)


def _write(kb: Any, batch: list[Copied]) -> None:
    if not isinstance(kb, KnowledgeBase):
        for document, chunks, vectors in batch:
            kb.write(kb.collection(), document, chunks, vectors)
        return
    ids = kb.database.insert([(document, chunks) for document, chunks, _ in batch])
    if ids:
        kb.dense.add(ids, np.concatenate([vectors for _, chunks, vectors in batch if chunks]))
        kb.bm25.add(ids, [c.indexed_text for _, chunks, _ in batch for c in chunks])
        save_indexes(kb.path, kb.dense, kb.bm25)
