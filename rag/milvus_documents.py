"""The document rows of one knowledge base in Milvus, and the reads of `rag.database.ChunkDatabase` on them.

A document row exists only once its document is committed, and its existence is what makes its
chunks visible (the rule is in `rag.milvus_store`); uploads and deletes under way are recorded as
operation rows (`begin`, `beat`, `end`). A document's id is `doc_` and the first 24 hex digits of its
sha256, so the same content uploaded twice, at once, through two gateways, is one row. Filters
(the grammar of `rag.query`) are evaluated here, on the committed rows' filename, id and
metadata, with the folder's semantics (`ne`/`nin` match a missing key; numbers compare with
numbers, strings with strings). This module knows nothing about chunks, vectors or ranking.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymilvus import MilvusClient

from rag.database import DocumentRecord
from rag.errors import DocumentNotFound
from rag.loaders import Document, Segment
from rag.milvus_schema import DOCUMENTS, OPERATIONS, PLACEHOLDER, TEXT_PIECE, TEXTS, one_of, quoted, rows
from rag.query import Comparison, Filter, parse_filters

UPLOAD, DELETE = "upload", "delete"
_FIELDS = ("key", "kb", "id", "filename", "sha256", "size", "created", "metadata", "chunk_count")
_MISSING = object()


def document_id(sha256: str) -> str:
    """The id of the document with this content hash."""
    return f"doc_{sha256[:24]}"


class MilvusDocuments:
    """The document rows of knowledge base `kb`."""

    def __init__(self, client: MilvusClient, kb: str):
        self.client, self.kb = client, kb

    def key(self, document_id: str) -> str:
        return f"{self.kb}/{document_id}"

    # --- reads: committed documents

    def documents(self) -> list[DocumentRecord]:
        """Committed documents, oldest first."""
        found = rows(self.client, DOCUMENTS, f"kb == {quoted(self.kb)}", _FIELDS)
        return [_record(row) for row in sorted(found, key=lambda row: (row["created"], row["id"]))]

    def document(self, document_id: str) -> DocumentRecord:
        row = self.row(document_id)
        if row is None:
            raise DocumentNotFound(document_id)
        return _record(row)

    def documents_by_sha256(self, digests: Sequence[str]) -> dict[str, DocumentRecord]:
        found = self.rows_by_id([document_id(digest) for digest in digests])
        return {row["sha256"]: _record(row) for row in found.values()}

    def committed(self, document_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of those of these document ids that are committed, by id."""
        return self.rows_by_id(list(set(document_ids)))

    def document_ids(self, filters: Any = None) -> list[str]:
        """Ids of the committed documents matching `filters`, oldest first."""
        tree = parse_filters(filters)
        return [record.id for record in self.documents() if tree is None or _matches(tree, record)]

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) of the committed documents."""
        records = self.documents()
        return len(records), sum(record.chunk_count for record in records)

    def texts(self, document_ids: Sequence[str]) -> dict[str, str]:
        """The stored text of each of these committed documents, by id."""
        sources = self.sources(list(self.committed(document_ids)))
        return {i: source.text for i, source in sources.items() if source is not None}

    def sources(self, document_ids: Sequence[str]) -> dict[str, Document | None]:
        """Each document's text and segments as loaded (None where its pieces are incomplete), by id."""
        if not document_ids:
            return {}
        where = f"kb == {quoted(self.kb)} and {one_of('document_id', list(document_ids))}"
        pieces: dict[str, dict[int, str]] = {}
        for row in rows(self.client, TEXTS, where, ["document_id", "part", "body"]):
            pieces.setdefault(row["document_id"], {})[row["part"]] = row["body"]
        found = self.rows_by_id(list(document_ids))
        sources: dict[str, Document | None] = {}
        for i in document_ids:
            parts, row = pieces.get(i, {}), found.get(i)
            try:
                body = json.loads("".join(parts[n] for n in range(len(parts))))
            except (KeyError, ValueError):
                body = None
            if row is None or body is None:
                sources[i] = None
                continue
            segments = tuple(Segment(*fields) for fields in body["segments"])
            sources[i] = Document(row["filename"], body["text"], segments, row["sha256"], row["size"], row["metadata"])
        return sources

    def row(self, document_id: str) -> dict[str, Any] | None:
        return self.rows_by_id([document_id]).get(document_id)

    def rows_by_id(self, document_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not document_ids:
            return {}
        found = self.client.query(DOCUMENTS, filter=one_of("key", [self.key(i) for i in document_ids]),
                                  output_fields=list(_FIELDS))  # fmt: skip
        return {row["id"]: dict(row) for row in found}

    # --- writes

    def begin(self, operation: str, document_id: str, owner: str) -> None:
        """Record that `owner` starts `operation` ("upload" or "delete") on a document; `beat` refreshes it."""
        self.client.upsert(OPERATIONS, [{"key": f"{self.kb}/{document_id}/{owner}", "kb": self.kb,
                                         "document_id": document_id, "operation": operation, "owner": owner,
                                         "updated": int(time.time()), "_v": PLACEHOLDER}])  # fmt: skip

    def beat(self, operation: str, document_id: str, owner: str) -> None:
        self.begin(operation, document_id, owner)

    def end(self, document_id: str, owner: str) -> None:
        self.client.delete(OPERATIONS, filter=f"key == {quoted(f'{self.kb}/{document_id}/{owner}')}")

    def others_busy(self, document_id: str, owner: str, since: int) -> bool:
        """Whether another owner has written an operation on this document since `since` (Unix time)."""
        where = (f"kb == {quoted(self.kb)} and document_id == {quoted(document_id)} and owner != {quoted(owner)}"
                 f" and updated >= {since}")  # fmt: skip
        return bool(self.client.query(OPERATIONS, filter=where, output_fields=["key"], limit=1))

    def write_text(self, document: Document) -> str:
        """Store a document's text and segments (before its chunks); its id."""
        new_id = document_id(document.sha256)
        body = json.dumps({"text": document.text, "segments": [[s.start, s.end, s.page, s.section]
                                                               for s in document.segments]})  # fmt: skip
        pieces = [body[at : at + TEXT_PIECE] for at in range(0, len(body), TEXT_PIECE)] or [""]
        self.client.upsert(TEXTS, [
            {"key": f"{self.kb}/{new_id}/{n}", "kb": self.kb, "document_id": new_id, "part": n, "body": piece,
             "_v": PLACEHOLDER} for n, piece in enumerate(pieces)
        ])  # fmt: skip
        return new_id

    def commit(self, document: Document, chunk_count: int) -> None:
        """Write the document's row: from now on its chunks are visible."""
        new_id = document_id(document.sha256)
        self._write({"key": self.key(new_id), "kb": self.kb, "id": new_id, "filename": document.name,
                     "sha256": document.sha256, "size": document.size, "created": int(time.time()),
                     "metadata": document.metadata, "chunk_count": chunk_count})  # fmt: skip

    def update(self, document_id: str, **changes: Any) -> None:
        """Rewrite a committed document's row with `changes`; DocumentNotFound if there is none."""
        row = self.row(document_id)
        if row is None:
            raise DocumentNotFound(document_id)
        self._write({**row, **changes})

    def set_metadata(self, document_id: str, metadata: Mapping[str, Any]) -> None:
        """Replace a committed document's metadata (what filters see); its chunks and content hash stay."""
        self.update(document_id, metadata=dict(metadata))

    def uncommit(self, document_ids: Sequence[str]) -> None:
        """Delete these documents' rows: their chunks are invisible from now on."""
        if document_ids:
            self.client.delete(DOCUMENTS, filter=one_of("key", [self.key(i) for i in document_ids]))

    def remove_texts(self, document_ids: Sequence[str]) -> None:
        if document_ids:
            self.client.delete(TEXTS, filter=f"kb == {quoted(self.kb)} and {one_of('document_id', document_ids)}")

    def _write(self, row: Mapping[str, Any]) -> None:
        self.client.upsert(DOCUMENTS, [{**{field: row[field] for field in _FIELDS}, "_v": PLACEHOLDER}])


def _record(row: Mapping[str, Any]) -> DocumentRecord:
    return DocumentRecord(row["id"], row["filename"], row["sha256"], int(row["size"]), int(row["created"]),
                          dict(row["metadata"] or {}), int(row["chunk_count"]))  # fmt: skip


def _matches(node: Filter, record: DocumentRecord) -> bool:
    if not isinstance(node, Comparison):
        found = (_matches(child, record) for child in node.filters)
        return all(found) if node.op == "and" else any(found)
    value = {"filename": record.filename, "document_id": record.id}.get(
        node.key, record.metadata.get(node.key, _MISSING)
    )
    if node.op in ("ne", "nin") and value is _MISSING:
        return True
    if value is _MISSING or value is None:
        return False
    if node.op == "in":
        return any(_equal(value, item) for item in node.value)
    if node.op == "nin":
        return not any(_equal(value, item) for item in node.value)
    if node.op == "eq":
        return _equal(value, node.value)
    if node.op == "ne":
        return not _equal(value, node.value)
    both_numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, node.value))
    if not (both_numbers or (isinstance(value, str) and isinstance(node.value, str))):
        return False
    return {"gt": value > node.value, "gte": value >= node.value, "lt": value < node.value,
            "lte": value <= node.value}[node.op]  # fmt: skip


def _equal(stored: Any, wanted: Any) -> bool:
    """SQLite's JSON equality: a boolean is 1 or 0, numbers compare by value, strings by text."""
    return (int(stored) if isinstance(stored, bool) else stored) == (
        int(wanted) if isinstance(wanted, bool) else wanted
    )
