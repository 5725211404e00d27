"""Knowledge bases: one folder each, and the collection of them under a root folder.

What a folder holds, and the order in which every change is saved so that a crash loses nothing
or is finished on the next open, are described in `rag.folder`; this module follows that order.

- A document is identified by the sha256 of its content: adding it again is a no-op that returns
  the existing record (and within one upload, the first of several files with the same content
  is the one stored). Deleting a document deletes its chunks from SQLite and both indexes.
- Chunks are at most as long as the embedder reads: a chunk size over its input is refused.
- Changing the embedder or the chunking cuts the documents again and re-embeds them
  (`rag.folder.reindex`).

One process owns a knowledge base: opening one takes its writer lock (`rag.writer_lock`), and
another process that opens it gets `KnowledgeBaseLocked` and changes nothing. Within the process,
a lock serialises writes between threads. This module knows nothing about ranking (see
`rag.retriever`) or prompts (see `rag.augment`).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag.atomic import fsync_directory, remove_stale_temporaries
from rag.attachments import Attachments
from rag.backend import NAME, Embedders, validate_name
from rag.database import ChunkDatabase, ChunkRecord, DocumentRecord
from rag.embedder import DEFAULT_EMBEDDER, Embedder, embed_all, load_embedder
from rag.errors import AlreadyExists, KnowledgeBaseNotFound
from rag.folder import BM25_INDEX, DATABASE, DENSE_INDEX, MANIFEST, Manifest, open_indexes, reindex, save_indexes
from rag.index import HNSW_THRESHOLD, BM25Index, DenseIndex, Scored
from rag.loaders import Document, load_document
from rag.splitter import ChunkingSettings, split_document
from rag.writer_lock import acquire, release

_LEFTOVER = re.compile(r"\.[a-z0-9_-]+\.(creating|deleting)-[0-9a-f]{32}")


class KnowledgeBase:
    """One knowledge base folder, opened with the embedder its manifest names, held by this process until closed."""

    def __init__(self, path: Path, embedder: Embedder):
        self.path = Path(path)
        Manifest.read(self.path)  # NotFound before anything is written
        acquire(self.path)
        self._closed = False
        try:
            self._open(embedder)
        except BaseException:
            self.close()
            raise

    def _open(self, embedder: Embedder) -> None:
        self.manifest = Manifest.read(self.path)
        if (embedder.id, embedder.dimension) != (self.manifest.embedder, self.manifest.dimension):
            raise ValueError(
                f"knowledge base {self.manifest.name!r} uses {self.manifest.embedder} "
                f"({self.manifest.dimension} dims), not {embedder.id} ({embedder.dimension} dims)"
            )
        self.embedder = embedder
        self.database = ChunkDatabase(self.path / DATABASE)
        self.database.upgrade(self.manifest.chunked_with())
        self._lock = threading.RLock()
        remove_stale_temporaries(self.path)
        self.manifest, self.dense, self.bm25 = open_indexes(self.path, self.manifest, self.database, embedder)

    def close(self) -> None:
        """Let go of the folder: once every opening in this process is closed, another process may open it."""
        if not self._closed:
            self._closed = True
            release(self.path)

    @classmethod
    def create(
        cls,
        path: Path,
        embedder: Embedder,
        *,
        chunking: ChunkingSettings | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
        extra: Mapping[str, Any] | None = None,
    ) -> KnowledgeBase:
        """Create an empty knowledge base named after the folder `path`, which must not exist (`extra`: Manifest)."""
        path = Path(path)
        if path.exists():
            raise AlreadyExists(f"knowledge base {path.name!r} already exists")
        chunking = chunking or ChunkingSettings.for_embedder(embedder.max_tokens)
        chunking.check_fits(embedder.max_tokens, embedder.id)
        created = int(time.time())
        manifest = Manifest(
            path.name, embedder.id, embedder.dimension, chunking, created, hnsw_threshold, extra=extra or {}
        )
        staging = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex}")
        staging.mkdir(parents=True)
        try:
            manifest.write(staging)
            ChunkDatabase.create(staging / DATABASE)
            DenseIndex(embedder.dimension, hnsw_threshold=hnsw_threshold).save(staging / DENSE_INDEX)
            BM25Index().save(staging / BM25_INDEX)
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_directory(path.parent)
        return cls(path, embedder)

    def ingest(
        self,
        filename: str,
        data: bytes,
        *,
        text_field: str = "text",
        metadata: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> list[DocumentRecord]:
        """Load a file (see `rag.loaders`), add its documents, and return their records.

        `metadata` is merged into each document's metadata (it does not change the content hash).
        """
        documents = load_document(filename, data, text_field=text_field)
        if metadata:
            documents = [replace(doc, metadata={**doc.metadata, **metadata}) for doc in documents]
        return self.add_documents(documents, progress=progress)

    def add_documents(
        self, documents: Sequence[Document], *, progress: bool = False, chunking: ChunkingSettings | None = None
    ) -> list[DocumentRecord]:
        """Add the documents not already present (by sha256), cut by `chunking` (default, and what a re-cut of
        every document uses: the manifest's); return a record for each, in order."""
        with self._lock:
            known = self.database.documents_by_sha256([doc.sha256 for doc in documents])
            fresh: dict[str, Document] = {}
            for doc in documents:
                if doc.sha256 not in known:
                    fresh.setdefault(doc.sha256, doc)  # the first of several with the same content wins
            planned = [
                (doc, split_document(doc, chunking or self.manifest.chunking, self.embedder.count_tokens))
                for doc in tqdm(fresh.values(), desc="chunking", unit="doc", disable=not progress)
            ]
            texts = [chunk.indexed_text for _, chunks in planned for chunk in chunks]
            vectors = embed_all(self.embedder, texts, progress=progress)
            chunk_ids = self.database.insert(planned)
            if chunk_ids:
                self.dense.add(chunk_ids, vectors)
                self.bm25.add(chunk_ids, texts)
                save_indexes(self.path, self.dense, self.bm25)
            records = self.database.documents_by_sha256([doc.sha256 for doc in documents])
            return [records[doc.sha256] for doc in documents]

    def delete_document(self, document_id: str) -> None:
        """Delete a document and all its chunks from SQLite, the dense index and BM25."""
        with self._lock:
            chunk_ids = self.database.delete_document(document_id)
            self.dense.remove(chunk_ids)
            self.bm25.remove(chunk_ids)
            save_indexes(self.path, self.dense, self.bm25)

    def set_embedder(
        self, embedder: Embedder, *, chunking: ChunkingSettings | None = None, progress: bool = False
    ) -> None:
        """Make `embedder` and `chunking` this knowledge base's: cut the documents again, re-embed all.

        `chunking` defaults to the current settings, fitted to what `embedder` reads (see
        `ChunkingSettings.fitted`); a chunk size over that raises ValueError before anything
        changes. Nothing changes either if this is already the embedder and chunking.
        """
        with self._lock:
            chunking = chunking or self.manifest.chunking.fitted(embedder.max_tokens)
            chunking.check_fits(embedder.max_tokens, embedder.id)
            manifest = replace(self.manifest, embedder=embedder.id, dimension=embedder.dimension, chunking=chunking)
            if manifest != self.manifest:
                dense, bm25 = reindex(self.path, self.database, self.manifest, manifest, embedder, self.bm25, progress)
                self.manifest, self.embedder, self.dense, self.bm25 = manifest, embedder, dense, bm25

    def set_extra(self, changes: Mapping[str, Any]) -> Manifest:
        """Merge `changes` into the manifest's `extra` (None removes a key), save it; return the manifest."""
        with self._lock:
            extra = {k: v for k, v in {**self.manifest.extra, **changes}.items() if v is not None}
            self.manifest = replace(self.manifest, extra=extra)
            self.manifest.write(self.path)
            return self.manifest

    def documents(self) -> list[DocumentRecord]:
        return self.database.documents()

    def document(self, document_id: str) -> DocumentRecord:
        """The document with this id; raises NotFound."""
        return self.database.document(document_id)

    def rankings(self, query: str, modes: Sequence[str], depth: int, filters: Any = None) -> dict[str, Scored]:
        """The `depth` best (chunk id, score) of each of `modes` ("dense", "bm25"), restricted to `filters`."""
        allowed = self.database.chunk_ids(filters) if filters else None
        found = {"bm25": self.bm25.search(query, depth, allowed)} if "bm25" in modes else {}
        if "dense" in modes:
            found["dense"] = self.dense.search(self.embedder.embed([query])[0], depth, allowed)
        return found

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        return self.database.chunks(ids)

    def stats(self) -> dict[str, Any]:
        documents, chunks = self.database.counts()
        return {"documents": documents, "chunks": chunks, "dense_index": self.dense.kind}


class KnowledgeBases:
    """The knowledge bases under `root`, each opened once, with embedders shared by id."""

    def __init__(
        self, root: Path, *, embedder_factory: Callable[[str], Embedder] = load_embedder,
        default_embedder: str = DEFAULT_EMBEDDER,
    ):  # fmt: skip
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.default_embedder = default_embedder
        self._embedders = Embedders(embedder_factory)
        self._open: dict[str, KnowledgeBase] = {}
        self._lock = threading.RLock()
        for leftover in self.root.glob(".*"):  # a create or delete that crashed half-way
            if leftover.is_dir() and _LEFTOVER.fullmatch(leftover.name):
                shutil.rmtree(leftover)

    def embedder(self, embedder_id: str) -> Embedder:
        """The embedder with this id, built once; EmbedderUnavailable if it cannot be built."""
        return self._embedders(embedder_id)

    def create(
        self, name: str, *, embedder: str | None = None, chunking: ChunkingSettings | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD, extra: Mapping[str, Any] | None = None,
    ) -> KnowledgeBase:  # fmt: skip
        """Create an empty knowledge base; `embedder` is an id, the default embedder if None."""
        with self._lock:
            path = self.root / validate_name(name)
            embedder_ = self.embedder(embedder or self.default_embedder)
            kb = KnowledgeBase.create(path, embedder_, chunking=chunking, hnsw_threshold=hnsw_threshold, extra=extra)
            self._open[name] = kb
            return kb

    def get(self, name: str) -> KnowledgeBase:
        """The open knowledge base `name`; raises NotFound."""
        with self._lock:
            if name not in self._open:
                manifest = Manifest.read(self.root / validate_name(name))
                self._open[name] = KnowledgeBase(self.root / name, self.embedder(manifest.embedder))
            return self._open[name]

    def set_embedder(
        self, name: str, embedder: str | None = None, *, chunking: ChunkingSettings | None = None,
        progress: bool = False,
    ) -> KnowledgeBase:  # fmt: skip
        """Change the embedder (an id; None keeps it) or chunking of `name`, see `KnowledgeBase.set_embedder`.

        If the change fails, the knowledge base is closed, so that the next `get` opens it from
        disk as the failure left it (as before, or the change finished).
        """
        kb = self.get(name)
        new_embedder = self.embedder(embedder) if embedder else kb.embedder
        try:
            kb.set_embedder(new_embedder, chunking=chunking, progress=progress)
        except BaseException:
            with self._lock:
                if self._open.get(name) is kb:
                    del self._open[name]
                    kb.close()
            raise
        return kb

    def attachments(self, name: str) -> Attachments:
        """The files attached to knowledge base `name` as a vector store, kept in its SQLite (`rag.attachments`)."""
        return Attachments(self.root / validate_name(name) / DATABASE)

    def counts(self, name: str) -> tuple[int, int]:
        """(documents, chunks) of knowledge base `name`, read without opening its indexes."""
        return ChunkDatabase(self.root / validate_name(name) / DATABASE).counts()

    def manifest(self, name: str) -> Manifest:
        """The manifest of knowledge base `name`, read without opening it; raises NotFound."""
        return Manifest.read(self.root / validate_name(name))

    def list(self) -> list[Manifest]:
        return [
            Manifest.read(path)
            for path in sorted(self.root.iterdir())
            if NAME.fullmatch(path.name) and (path / MANIFEST).is_file()
        ]

    def delete(self, name: str) -> None:
        """Delete knowledge base `name` and its folder; raises NotFound."""
        with self._lock:
            path = self.root / validate_name(name)
            if not (path / MANIFEST).is_file():
                raise KnowledgeBaseNotFound(name)
            acquire(path)  # refuses to delete what another process writes
            try:
                self._open.pop(name, None)
                doomed = path.with_name(f".{name}.deleting-{uuid.uuid4().hex}")
                path.rename(doomed)
                shutil.rmtree(doomed)
            finally:
                release(path, all_opens=True)
