"""A knowledge base folder on disk: its files, `kb.json`, and keeping what is derived from SQLite in line.

The folder holds `kb.json` (name, embedder id, dimension, chunking, created, a client's `extra`), `chunks.sqlite`
(documents and chunks, see `rag.database`), `index.faiss` (dense), `bm25.npz` (BM25) and
`writer.lock` (`rag.writer_lock`). SQLite is the source of truth; both indexes are derived from it:

- An upload is parsed, split and embedded before anything is written; its documents and chunks
  are then inserted in one SQLite transaction, and only after that commit are the indexes
  updated and saved (each file atomically: temporary file, fsync, rename). A crash before the
  commit leaves the knowledge base as it was; a crash after it is repaired when the knowledge
  base is next opened (`open_indexes`): each index is compared with SQLite's chunk ids and what
  differs is added or removed (a missing or unreadable index file is rebuilt the same way).
- Changing the embedder (or the chunking, `reindex`) cuts every document again from its stored
  text, with the new settings and the new embedder's tokens, and re-embeds every chunk; a document
  whose chunks come out the same keeps them. A document stored without its text (by an older
  lorag) keeps its chunks, each one that no longer fits cut within its own span. Everything is
  computed first; then `kb.json` is written with the new settings and `dense_stale`, the new
  chunks are committed to SQLite (with what they were cut for), the indexes are saved and
  `dense_stale` is cleared. A crash in between is finished when the knowledge base is next
  opened: chunks not yet committed are cut again, and the dense index is rebuilt.

This module knows nothing about uploads, locks, knowledge base names or the collection of
folders (see `rag.store`), nor about ranking (see `rag.retriever`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rag.atomic import atomic_write_json
from rag.database import ChunkDatabase, ChunkRecord
from rag.embedder import Embedder, embed_all
from rag.errors import KnowledgeBaseNotFound
from rag.index import HNSW_THRESHOLD, BM25Index, CorruptIndex, DenseIndex
from rag.splitter import Chunk, ChunkingSettings, split_again

MANIFEST, DATABASE, DENSE_INDEX, BM25_INDEX = "kb.json", "chunks.sqlite", "index.faiss", "bm25.npz"
log = logging.getLogger(__name__)


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
    extra: dict[str, Any] = field(default_factory=dict)
    """What a client keeps with the knowledge base (the gateway: a vector store's name, owner, metadata,
    expiry); rag stores it and never reads it."""

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise KnowledgeBaseNotFound(folder.name) from error
        return cls(**{**data, "chunking": ChunkingSettings(**data["chunking"])})

    def write(self, folder: Path) -> None:
        atomic_write_json(folder / MANIFEST, asdict(self))

    def chunked_with(self) -> dict[str, Any]:
        """What the chunks of a knowledge base with this manifest are cut for, as SQLite records it."""
        return {"embedder": self.embedder, "chunking": asdict(self.chunking)}


def save_indexes(folder: Path, dense: DenseIndex, bm25: BM25Index) -> None:
    dense.save(folder / DENSE_INDEX)
    bm25.save(folder / BM25_INDEX)


def open_indexes(
    folder: Path, manifest: Manifest, database: ChunkDatabase, embedder: Embedder
) -> tuple[Manifest, DenseIndex, BM25Index]:
    """Finish an embedder change cut short, load both indexes and bring them in line with SQLite's chunks.

    Returns the manifest (`dense_stale` cleared, and saved so, if it was set) and the two indexes.
    """
    if manifest.dense_stale and database.chunked_with() != manifest.chunked_with():
        log.warning("finishing the change of embedder or chunking of %s", manifest.name)
        planned = _plan_chunks(database, database.chunks(), embedder, manifest.chunking)
        database.replace_chunks(planned, manifest.chunked_with())
    dense = DenseIndex(manifest.dimension, hnsw_threshold=manifest.hnsw_threshold)
    bm25 = BM25Index()
    try:
        if not manifest.dense_stale:
            loaded = DenseIndex.load(folder / DENSE_INDEX, hnsw_threshold=manifest.hnsw_threshold)
            dense = loaded if loaded.dimension == manifest.dimension else dense
    except CorruptIndex as error:
        log.warning("rebuilding the dense index of %s: %s", manifest.name, error)
    try:
        bm25 = BM25Index.load(folder / BM25_INDEX)
    except CorruptIndex as error:
        log.warning("rebuilding the BM25 index of %s: %s", manifest.name, error)
    wanted = database.chunk_ids()
    changed = manifest.dense_stale
    for index in (dense, bm25):
        present = index.ids()
        extra, missing = np.setdiff1d(present, wanted), np.setdiff1d(wanted, present)
        index.remove(extra.tolist())
        chunks = list(database.chunks(missing.tolist()).values()) if missing.size else []
        texts = [c.indexed_text for c in chunks]
        if chunks and index is dense:
            dense.add([c.id for c in chunks], embed_all(embedder, texts))
        elif chunks:
            bm25.add([c.id for c in chunks], texts)
        changed = changed or bool(extra.size or missing.size)
    if changed:
        save_indexes(folder, dense, bm25)
    if manifest.dense_stale:
        manifest = replace(manifest, dense_stale=False)
        manifest.write(folder)
    return manifest, dense, bm25


def reindex(
    folder: Path,
    database: ChunkDatabase,
    old: Manifest,
    new: Manifest,
    embedder: Embedder,
    bm25: BM25Index,
    progress: bool = False,
) -> tuple[DenseIndex, BM25Index]:
    """Change the knowledge base from `old` to `new`, whose embedder is `embedder`; return its new indexes.

    Cuts the documents again for `new.chunking` in `embedder`'s tokens, re-embeds every chunk and
    saves it all in the order the module docstring describes. `bm25` (the current index) is
    returned as it is when no document is cut differently. If the SQLite commit fails, `old` is
    written back: nothing was committed, the knowledge base is as it was.
    """
    chunks = database.chunks()
    planned = _plan_chunks(database, chunks, embedder, new.chunking, progress)
    kept = [c for c in chunks.values() if c.document_id not in planned]
    texts = [c.indexed_text for cut in planned.values() for c in cut] + [c.indexed_text for c in kept]
    vectors = embed_all(embedder, texts, progress=progress)
    replace(new, dense_stale=True).write(folder)
    try:
        ids = database.replace_chunks(planned, new.chunked_with()) + [c.id for c in kept]
    except BaseException:
        old.write(folder)
        raise
    dense = DenseIndex(embedder.dimension, hnsw_threshold=new.hnsw_threshold)
    dense.add(ids, vectors)
    if planned:
        bm25 = BM25Index()
        bm25.add(ids, texts)
        bm25.save(folder / BM25_INDEX)
    dense.save(folder / DENSE_INDEX)
    new.write(folder)
    return dense, bm25


def _plan_chunks(
    database: ChunkDatabase,
    chunks: Mapping[int, ChunkRecord],
    embedder: Embedder,
    chunking: ChunkingSettings,
    progress: bool = False,
) -> dict[str, list[Chunk]]:
    """The documents that `chunking` in `embedder`'s tokens cuts other than `chunks`, with their new chunks."""
    current: dict[str, list[Chunk]] = {}
    for c in sorted(chunks.values(), key=lambda c: (c.document_id, c.ordinal)):
        current.setdefault(c.document_id, []).append(Chunk(c.ordinal, c.text, c.start, c.end, c.page, c.section))
    sources = database.sources()
    planned = {}
    for record in tqdm(database.documents(), desc="re-splitting", unit="doc", disable=not progress):
        old = current.get(record.id, [])
        new = split_again(record.filename, sources.get(record.id), old, chunking, embedder.count_tokens)
        if new != old:
            planned[record.id] = new
    return planned
