"""`chunks.sqlite`: the documents and chunks of one knowledge base, its source of truth.

Every method opens its own connection and runs as one transaction (committed on success,
rolled back on error), so a crash mid-write leaves the database as it was before that write.
Each document keeps its extracted text and segments, so it can be cut again with other chunking
settings (NULL for documents stored by a lorag version that did not keep them). The `settings` table records
what the chunks were cut for (`chunked_with`: embedder id and chunking), committed together with
the chunks. Document metadata is JSON; filters on it use SQLite's JSON functions. This module
knows nothing about embeddings, indexes or the knowledge base folder around the file.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import DocumentNotFound
from rag.loaders import Document, Segment
from rag.query import Comparison, Filter, parse_filters
from rag.splitter import Chunk, indexed_text

_SCHEMA = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL, created INTEGER NOT NULL, metadata TEXT NOT NULL, text TEXT, segments TEXT
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, document_id TEXT NOT NULL REFERENCES documents(id),
    ordinal INTEGER NOT NULL, text TEXT NOT NULL, start_char INTEGER NOT NULL, end_char INTEGER NOT NULL,
    page INTEGER, section TEXT, UNIQUE (document_id, ordinal)
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_ADDED_COLUMNS = {"text": "TEXT", "segments": "TEXT"}
"""Columns of `documents` that databases written before they existed lack (added on open)."""
_DOCUMENTS = (
    "SELECT d.id, d.filename, d.sha256, d.size, d.created, d.metadata,"
    " (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id) AS chunk_count FROM documents d"
)
_CHUNKS = "SELECT c.*, d.filename, d.metadata FROM chunks c JOIN documents d ON d.id = c.document_id"
_IN_JSON_LIST = "IN (SELECT value FROM json_each(?))"


@dataclass(frozen=True)
class DocumentRecord:
    id: str
    filename: str
    sha256: str
    size: int
    """Bytes of the uploaded file (of the record's JSON for a JSON record)."""
    created: int
    """Unix time of the first upload."""
    metadata: dict[str, Any]
    chunk_count: int


@dataclass(frozen=True)
class ChunkRecord:
    id: int
    document_id: str
    filename: str
    ordinal: int
    text: str
    start: int
    end: int
    page: int | None
    section: str | None
    metadata: dict[str, Any]
    """The metadata of the chunk's document."""

    @property
    def indexed_text(self) -> str:
        return indexed_text(self.text, self.section)


class ChunkDatabase:
    """The SQLite file at `path`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path) -> ChunkDatabase:
        with _connect(path) as db:
            db.executescript(_SCHEMA)
        return cls(path)

    def upgrade(self, chunked_with: Mapping[str, Any]) -> None:
        """Bring a database written by an older lorag up to this schema; `chunked_with` is recorded
        as what its chunks were cut for unless a value is recorded already."""
        with _connect(self.path) as db:
            columns = {row["name"] for row in db.execute("PRAGMA table_info(documents)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in columns:
                    db.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")
            db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT OR IGNORE INTO settings VALUES ('chunked_with', ?)", (json.dumps(chunked_with),))

    def chunked_with(self) -> dict[str, Any] | None:
        """What the chunks were cut for, as recorded by `upgrade` or `replace_chunks`."""
        with _connect(self.path) as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'chunked_with'").fetchone()
        return None if row is None else json.loads(row["value"])

    def insert(self, planned: Sequence[tuple[Document, Sequence[Chunk]]]) -> list[int]:
        """Insert documents with their chunks in one transaction; return the new chunk ids in order."""
        chunk_ids = []
        with _connect(self.path) as db:
            for doc, chunks in planned:
                document_id = f"doc_{uuid.uuid4().hex[:24]}"
                segments = [[seg.start, seg.end, seg.page, seg.section] for seg in doc.segments]
                db.execute(
                    "INSERT INTO documents (id, filename, sha256, size, created, metadata, text, segments)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (document_id, doc.name, doc.sha256, doc.size, int(time.time()), json.dumps(doc.metadata),
                     doc.text, json.dumps(segments)),
                )  # fmt: skip
                chunk_ids += _insert_chunks(db, document_id, chunks)
        return chunk_ids

    def replace_chunks(self, planned: Mapping[str, Sequence[Chunk]], chunked_with: Mapping[str, Any]) -> list[int]:
        """In one transaction: replace the chunks of each document id in `planned` and record
        `chunked_with`; return the new chunk ids in order."""
        chunk_ids = []
        with _connect(self.path) as db:
            for document_id, chunks in planned.items():
                db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
                chunk_ids += _insert_chunks(db, document_id, chunks)
            db.execute("INSERT OR REPLACE INTO settings VALUES ('chunked_with', ?)", (json.dumps(chunked_with),))
        return chunk_ids

    def sources(self) -> dict[str, Document | None]:
        """Each document's text and segments as they were loaded, by document id (None if not stored)."""
        with _connect(self.path) as db:
            rows = db.execute("SELECT * FROM documents ORDER BY created, rowid").fetchall()
        return {row["id"]: _source(row) for row in rows}

    def delete_document(self, document_id: str) -> list[int]:
        """Delete a document and its chunks; return the deleted chunk ids."""
        with _connect(self.path) as db:
            if db.execute("SELECT 1 FROM documents WHERE id = ?", (document_id,)).fetchone() is None:
                raise DocumentNotFound(document_id)
            rows = db.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,)).fetchall()
            db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
            db.execute("DELETE FROM documents WHERE id = ?", (document_id,))
        return [row["id"] for row in rows]

    def documents(self) -> list[DocumentRecord]:
        with _connect(self.path) as db:
            return [_document(row) for row in db.execute(_DOCUMENTS + " ORDER BY d.created, d.rowid")]

    def document(self, document_id: str) -> DocumentRecord:
        with _connect(self.path) as db:
            row = db.execute(_DOCUMENTS + " WHERE d.id = ?", (document_id,)).fetchone()
        if row is None:
            raise DocumentNotFound(document_id)
        return _document(row)

    def documents_by_sha256(self, digests: Sequence[str]) -> dict[str, DocumentRecord]:
        with _connect(self.path) as db:
            rows = db.execute(f"{_DOCUMENTS} WHERE d.sha256 {_IN_JSON_LIST}", (json.dumps(list(digests)),))
            return {row["sha256"]: _document(row) for row in rows}

    def chunks(self, ids: Sequence[int] | None = None) -> dict[int, ChunkRecord]:
        """Chunks by id (all of them if `ids` is None); ids not in the database are left out."""
        with _connect(self.path) as db:
            if ids is None:
                rows = db.execute(_CHUNKS)
            else:
                rows = db.execute(f"{_CHUNKS} WHERE c.id {_IN_JSON_LIST}", (json.dumps([int(i) for i in ids]),))
            return {row["id"]: _chunk(row) for row in rows}

    def chunk_ids(self, filters: Any = None) -> np.ndarray:
        """Ids of the chunks whose document matches ``filters`` (the grammar of :mod:`rag.query`)."""
        where, params = _where(parse_filters(filters))
        with _connect(self.path) as db:
            rows = db.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id{where}", params)
            return np.fromiter((row[0] for row in rows), dtype=np.int64)

    def document_ids(self, filters: Any = None) -> list[str]:
        """Ids of the documents matching ``filters``, oldest first."""
        where, params = _where(parse_filters(filters))
        with _connect(self.path) as db:
            return [
                row[0] for row in db.execute(f"SELECT d.id FROM documents d{where} ORDER BY d.created, d.rowid", params)
            ]

    def set_metadata(self, document_id: str, metadata: Mapping[str, Any]) -> None:
        """Replace a document's metadata (what filters see); its chunks and content hash stay."""
        with _connect(self.path) as db:
            if not db.execute(
                "UPDATE documents SET metadata = ? WHERE id = ?", (json.dumps(metadata), document_id)
            ).rowcount:
                raise DocumentNotFound(document_id)

    def texts(self, document_ids: Sequence[str]) -> dict[str, str]:
        """The stored text of each of these documents (documents stored without it are left out), by id."""
        with _connect(self.path) as db:
            rows = db.execute(
                f"SELECT id, text FROM documents WHERE id {_IN_JSON_LIST}", (json.dumps(list(document_ids)),)
            )
            return {row["id"]: row["text"] for row in rows if row["text"] is not None}

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""
        with _connect(self.path) as db:
            return (
                db.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
            )


_SQL_OPS = {"eq": "=", "ne": "IS NOT", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _where(tree: Filter | None) -> tuple[str, list[Any]]:
    """`` WHERE ...`` over the documents table ``d`` for a filter tree, and its parameters."""
    if tree is None:
        return "", []
    params: list[Any] = []
    return " WHERE " + _condition(tree, params), params


def _condition(node: Filter, params: list[Any]) -> str:
    if not isinstance(node, Comparison):
        return "(" + f" {node.op.upper()} ".join(_condition(child, params) for child in node.filters) + ")"
    column, column_params = {"filename": ("d.filename", []), "document_id": ("d.id", [])}.get(
        node.key, ("json_extract(d.metadata, ?)", [f'$."{node.key}"'])
    )
    if node.op == "in":
        params += [*column_params, json.dumps(list(node.value))]
        return f"{column} {_IN_JSON_LIST}"
    if node.op == "nin":  # a document without the key is not in the list either
        params += [*column_params, *column_params, json.dumps(list(node.value))]
        return f"({column} IS NULL OR {column} NOT {_IN_JSON_LIST})"
    params += [*column_params, node.value]
    return f"{column} {_SQL_OPS[node.op]} ?"


def _insert_chunks(db: sqlite3.Connection, document_id: str, chunks: Sequence[Chunk]) -> list[int]:
    ids = []
    for c in chunks:
        cursor = db.execute(
            "INSERT INTO chunks (document_id, ordinal, text, start_char, end_char, page, section)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (document_id, c.ordinal, c.text, c.start, c.end, c.page, c.section),
        )
        ids.append(int(cursor.lastrowid))
    return ids


def _source(row: sqlite3.Row) -> Document | None:
    if row["text"] is None or row["segments"] is None:
        return None
    segments = tuple(Segment(*fields) for fields in json.loads(row["segments"]))
    return Document(row["filename"], row["text"], segments, row["sha256"], row["size"], json.loads(row["metadata"]))


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        with connection:
            yield connection
    finally:
        connection.close()


def _document(row: sqlite3.Row) -> DocumentRecord:
    fields = dict(row)
    return DocumentRecord(**{**fields, "metadata": json.loads(fields["metadata"])})


def _chunk(row: sqlite3.Row) -> ChunkRecord:
    fields = dict(row)
    return ChunkRecord(
        id=fields["id"],
        document_id=fields["document_id"],
        filename=fields["filename"],
        ordinal=fields["ordinal"],
        text=fields["text"],
        start=fields["start_char"],
        end=fields["end_char"],
        page=fields["page"],
        section=fields["section"],
        metadata=json.loads(fields["metadata"]),
    )
