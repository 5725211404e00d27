"""Knowledge bases on disk: one folder each, and the collection of them under a root folder.

A knowledge base folder holds `kb.json` (name, embedder id, dimension, chunking, created),
`chunks.sqlite` (documents and chunks, see `rag.database`), `index.faiss` (dense) and
`bm25.npz` (BM25). SQLite is the source of truth; both indexes are derived from it:

- An upload is parsed, split and embedded before anything is written; its documents and chunks
  are then inserted in one SQLite transaction, and only after that commit are the indexes
  updated and saved (each file atomically: temporary file, fsync, rename). A crash before the
  commit leaves the knowledge base as it was; a crash after it is repaired when the knowledge
  base is next opened: each index is compared with SQLite's chunk ids and what differs is added
  or removed (a missing or unreadable index file is rebuilt the same way).
- A document is identified by the sha256 of its content: adding it again is a no-op that returns
  the existing record (and within one upload, the first of several files with the same content
  is the one stored). Deleting a document deletes its chunks from SQLite and both indexes.
- Chunks are at most as long as the embedder reads: a chunk size over its input is refused.
- Changing the embedder (or the chunking) cuts every document again from its stored text, with the
  new settings and the new embedder's tokens, and re-embeds every chunk; a document whose chunks
  come out the same keeps them. A document stored without its text (by an older lorag) keeps its
  chunks, each one that no longer fits cut within its own span. Everything is computed first;
  then `kb.json` is written with the new settings and `dense_stale`, the new chunks are committed
  to SQLite (with what they were cut for), the indexes are saved and `dense_stale` is cleared. A
  crash in between is finished when the knowledge base is next opened: chunks not yet committed
  are cut again, and the dense index is rebuilt.

One process owns a knowledge base; a lock serialises its writes between threads. This module
knows nothing about ranking (see `rag.retriever`) or prompts (see `rag.augment`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rag.atomic import atomic_write_json, fsync_directory, remove_stale_temporaries
from rag.database import ChunkDatabase, ChunkRecord, DocumentRecord, NotFound
from rag.embedder import DEFAULT_EMBEDDER, Embedder, load_embedder
from rag.index import HNSW_THRESHOLD, BM25Index, CorruptIndex, DenseIndex
from rag.loaders import Document, load_document
from rag.splitter import Chunk, ChunkingSettings, split_again, split_document

MANIFEST, DATABASE, DENSE_INDEX, BM25_INDEX = "kb.json", "chunks.sqlite", "index.faiss", "bm25.npz"
EMBED_BATCH = 64
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LEFTOVER = re.compile(r"\.[a-z0-9_-]+\.(creating|deleting)-[0-9a-f]{32}")
log = logging.getLogger(__name__)


class AlreadyExists(ValueError):
    """A knowledge base by that name exists."""


@dataclass(frozen=True)
class Manifest:
    """The contents of `kb.json`."""

    name: str
    embedder: str
    dimension: int
    chunking: ChunkingSettings
    created: int
    hnsw_threshold: int = HNSW_THRESHOLD
    """Chunk count from which the dense index is HNSW instead of exact."""
    dense_stale: bool = False
    """Set while an embedder or chunking change is being saved; the next open finishes it (re-cuts
    the chunks if SQLite does not hold them yet, rebuilds the dense index)."""

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise NotFound(f"no knowledge base {folder.name!r}") from error
        return cls(**{**data, "chunking": ChunkingSettings(**data["chunking"])})

    def write(self, folder: Path) -> None:
        atomic_write_json(folder / MANIFEST, asdict(self))


def validate_name(name: str) -> str:
    """Return `name` if it is 1-64 of lowercase letters, digits, '-' and '_'; else raise ValueError."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid knowledge base name {name!r}: use 1-64 of a-z, 0-9, '-' and '_'")
    return name


class KnowledgeBase:
    """One knowledge base folder, opened with the embedder its manifest names."""

    def __init__(self, path: Path, embedder: Embedder):
        self.path = Path(path)
        self.manifest = Manifest.read(self.path)
        if (embedder.id, embedder.dimension) != (self.manifest.embedder, self.manifest.dimension):
            raise ValueError(
                f"knowledge base {self.manifest.name!r} uses {self.manifest.embedder} "
                f"({self.manifest.dimension} dims), not {embedder.id} ({embedder.dimension} dims)"
            )
        self.embedder = embedder
        self.database = ChunkDatabase(self.path / DATABASE)
        self.database.upgrade(_chunked_with(self.manifest))
        self._lock = threading.RLock()
        remove_stale_temporaries(self.path)
        self._open_indexes()

    @classmethod
    def create(
        cls,
        path: Path,
        embedder: Embedder,
        *,
        chunking: ChunkingSettings | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
    ) -> KnowledgeBase:
        """Create an empty knowledge base named after the folder `path`, which must not exist."""
        path = Path(path)
        if path.exists():
            raise AlreadyExists(f"knowledge base {path.name!r} already exists")
        chunking = chunking or ChunkingSettings.for_embedder(embedder.max_tokens)
        chunking.check_fits(embedder.max_tokens, embedder.id)
        manifest = Manifest(path.name, embedder.id, embedder.dimension, chunking, int(time.time()), hnsw_threshold)
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

    def add_documents(self, documents: Sequence[Document], *, progress: bool = False) -> list[DocumentRecord]:
        """Add the documents not already present (by sha256); return a record for each, in order."""
        with self._lock:
            known = self.database.documents_by_sha256([doc.sha256 for doc in documents])
            fresh: dict[str, Document] = {}
            for doc in documents:
                if doc.sha256 not in known:
                    fresh.setdefault(doc.sha256, doc)  # the first of several with the same content wins
            planned = [
                (doc, split_document(doc, self.manifest.chunking, self.embedder.count_tokens))
                for doc in tqdm(fresh.values(), desc="chunking", unit="doc", disable=not progress)
            ]
            texts = [chunk.indexed_text for _, chunks in planned for chunk in chunks]
            vectors = self._embed(texts, progress=progress)
            chunk_ids = self.database.insert(planned)
            if chunk_ids:
                self.dense.add(chunk_ids, vectors)
                self.bm25.add(chunk_ids, texts)
                self._save_indexes()
            records = self.database.documents_by_sha256([doc.sha256 for doc in documents])
            return [records[doc.sha256] for doc in documents]

    def delete_document(self, document_id: str) -> None:
        """Delete a document and all its chunks from SQLite, the dense index and BM25."""
        with self._lock:
            chunk_ids = self.database.delete_document(document_id)
            self.dense.remove(chunk_ids)
            self.bm25.remove(chunk_ids)
            self._save_indexes()

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
            if manifest == self.manifest:
                return
            chunks = self.database.chunks()
            planned = self._plan_chunks(chunks, embedder, chunking, progress)
            kept = [c for c in chunks.values() if c.document_id not in planned]
            texts = [c.indexed_text for cut in planned.values() for c in cut] + [c.indexed_text for c in kept]
            vectors = self._embed(texts, embedder, progress)
            replace(manifest, dense_stale=True).write(self.path)
            try:
                ids = self.database.replace_chunks(planned, _chunked_with(manifest)) + [c.id for c in kept]
            except BaseException:
                self.manifest.write(self.path)  # nothing was committed: the knowledge base is as it was
                raise
            dense = DenseIndex(embedder.dimension, hnsw_threshold=self.manifest.hnsw_threshold)
            dense.add(ids, vectors)
            bm25 = self.bm25
            if planned:
                bm25 = BM25Index()
                bm25.add(ids, texts)
                bm25.save(self.path / BM25_INDEX)
            dense.save(self.path / DENSE_INDEX)
            manifest.write(self.path)
            self.manifest, self.embedder, self.dense, self.bm25 = manifest, embedder, dense, bm25

    def documents(self) -> list[DocumentRecord]:
        return self.database.documents()

    def document(self, document_id: str) -> DocumentRecord:
        """The document with this id; raises NotFound."""
        return self.database.document(document_id)

    def stats(self) -> dict[str, Any]:
        documents, chunks = self.database.counts()
        return {"documents": documents, "chunks": chunks, "dense_index": self.dense.kind}

    def _embed(self, texts: list[str], embedder: Embedder | None = None, progress: bool = False) -> np.ndarray:
        """Vectors of `texts`, in order; embedded longest first, so that a batch pads its texts little."""
        embedder = embedder or self.embedder
        vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress) as bar:
            for start in range(0, len(texts), EMBED_BATCH):
                batch = order[start : start + EMBED_BATCH]
                vectors[batch] = embedder.embed([texts[i] for i in batch])
                bar.update(len(batch))
        return vectors

    def _plan_chunks(
        self, chunks: Mapping[int, ChunkRecord], embedder: Embedder, chunking: ChunkingSettings, progress: bool = False
    ) -> dict[str, list[Chunk]]:
        """The documents that `chunking` in `embedder`'s tokens cuts other than `chunks`, with their new chunks."""
        current: dict[str, list[Chunk]] = {}
        for c in sorted(chunks.values(), key=lambda c: (c.document_id, c.ordinal)):
            current.setdefault(c.document_id, []).append(Chunk(c.ordinal, c.text, c.start, c.end, c.page, c.section))
        sources = self.database.sources()
        planned = {}
        for record in tqdm(self.database.documents(), desc="re-splitting", unit="doc", disable=not progress):
            old = current.get(record.id, [])
            new = split_again(record.filename, sources.get(record.id), old, chunking, embedder.count_tokens)
            if new != old:
                planned[record.id] = new
        return planned

    def _save_indexes(self) -> None:
        self.dense.save(self.path / DENSE_INDEX)
        self.bm25.save(self.path / BM25_INDEX)

    def _open_indexes(self) -> None:
        """Finish an embedder change cut short, load both indexes and bring them in line with SQLite's chunks."""
        chunked_with = _chunked_with(self.manifest)
        if self.manifest.dense_stale and self.database.chunked_with() != chunked_with:
            log.warning("finishing the change of embedder or chunking of %s", self.manifest.name)
            planned = self._plan_chunks(self.database.chunks(), self.embedder, self.manifest.chunking)
            self.database.replace_chunks(planned, chunked_with)
        dense = DenseIndex(self.manifest.dimension, hnsw_threshold=self.manifest.hnsw_threshold)
        bm25 = BM25Index()
        try:
            if not self.manifest.dense_stale:
                loaded = DenseIndex.load(self.path / DENSE_INDEX, hnsw_threshold=self.manifest.hnsw_threshold)
                dense = loaded if loaded.dimension == self.manifest.dimension else dense
        except CorruptIndex as error:
            log.warning("rebuilding the dense index of %s: %s", self.manifest.name, error)
        try:
            bm25 = BM25Index.load(self.path / BM25_INDEX)
        except CorruptIndex as error:
            log.warning("rebuilding the BM25 index of %s: %s", self.manifest.name, error)
        wanted = self.database.chunk_ids()
        changed = self.manifest.dense_stale
        for index in (dense, bm25):
            present = index.ids()
            extra, missing = np.setdiff1d(present, wanted), np.setdiff1d(wanted, present)
            index.remove(extra.tolist())
            chunks = list(self.database.chunks(missing.tolist()).values()) if missing.size else []
            texts = [c.indexed_text for c in chunks]
            if chunks and index is dense:
                dense.add([c.id for c in chunks], self._embed(texts))
            elif chunks:
                bm25.add([c.id for c in chunks], texts)
            changed = changed or bool(extra.size or missing.size)
        self.dense, self.bm25 = dense, bm25
        if changed:
            self._save_indexes()
        if self.manifest.dense_stale:
            self.manifest = replace(self.manifest, dense_stale=False)
            self.manifest.write(self.path)


def _chunked_with(manifest: Manifest) -> dict[str, Any]:
    """What the chunks of a knowledge base with this manifest are cut for, as SQLite records it."""
    return {"embedder": manifest.embedder, "chunking": asdict(manifest.chunking)}


class KnowledgeBases:
    """The knowledge bases under `root`, each opened once, with embedders shared by id."""

    def __init__(
        self,
        root: Path,
        *,
        embedder_factory: Callable[[str], Embedder] = load_embedder,
        default_embedder: str = DEFAULT_EMBEDDER,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.default_embedder = default_embedder
        self._factory = embedder_factory
        self._embedders: dict[str, Embedder] = {}
        self._open: dict[str, KnowledgeBase] = {}
        self._lock = threading.RLock()
        for leftover in self.root.glob(".*"):  # a create or delete that crashed half-way
            if leftover.is_dir() and _LEFTOVER.fullmatch(leftover.name):
                shutil.rmtree(leftover)

    def embedder(self, embedder_id: str) -> Embedder:
        """The embedder with this id, built once by the factory."""
        with self._lock:
            if embedder_id not in self._embedders:
                self._embedders[embedder_id] = self._factory(embedder_id)
            return self._embedders[embedder_id]

    def create(
        self,
        name: str,
        *,
        embedder: str | None = None,
        chunking: ChunkingSettings | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
    ) -> KnowledgeBase:
        """Create an empty knowledge base; `embedder` is an id, the default embedder if None."""
        with self._lock:
            path = self.root / validate_name(name)
            embedder_ = self.embedder(embedder or self.default_embedder)
            kb = KnowledgeBase.create(path, embedder_, chunking=chunking, hnsw_threshold=hnsw_threshold)
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
        self,
        name: str,
        embedder: str | None = None,
        *,
        chunking: ChunkingSettings | None = None,
        progress: bool = False,
    ) -> KnowledgeBase:
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
            raise
        return kb

    def list(self) -> list[Manifest]:
        return [
            Manifest.read(path)
            for path in sorted(self.root.iterdir())
            if _NAME.fullmatch(path.name) and (path / MANIFEST).is_file()
        ]

    def delete(self, name: str) -> None:
        """Delete knowledge base `name` and its folder; raises NotFound."""
        with self._lock:
            path = self.root / validate_name(name)
            if not (path / MANIFEST).is_file():
                raise NotFound(f"no knowledge base {name!r}")
            self._open.pop(name, None)
            doomed = path.with_name(f".{name}.deleting-{uuid.uuid4().hex}")
            path.rename(doomed)
            shutil.rmtree(doomed)
