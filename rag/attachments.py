"""Attachments: files a client attaches to a knowledge base under its own id, and how their ingestion went.

Two tables of the knowledge base's `chunks.sqlite`, created on first use: `attachments` (one row
per attached file: its id, status, batch, and a JSON body with its attributes, chunking, bytes
used and last error) and `attachment_batches` (a group of attachments made together, and
whether it was cancelled). Statuses are "in_progress", "completed", "failed" and "cancelled";
only an attachment in progress changes status (`finish`), so a cancellation that came first
wins. Rows are committed one write at a time and survive a restart: an attachment still "in
progress" when its process stopped is one to ingest again. The documents an attachment made
are found by their metadata, not recorded here. `rag.milvus_attachments` keeps the same on
Milvus. This module knows nothing about files' content, chunking or indexes; the gateway's vector
stores are its client.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["in_progress", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("in_progress", "completed", "failed", "cancelled")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS attachments (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    created INTEGER NOT NULL, status TEXT NOT NULL, batch TEXT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachment_batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    created INTEGER NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0);
"""


@dataclass(frozen=True)
class Attachment:
    id: str
    created: int
    status: Status = "in_progress"
    batch: str | None = None
    filename: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    chunking: dict[str, Any] | None = None
    """How the file is cut, as the client asked (None: the knowledge base's chunking)."""
    usage_bytes: int = 0
    error: dict[str, str] | None = None
    """Why it failed: {"code", "message"}."""


@dataclass(frozen=True)
class Batch:
    id: str
    created: int
    cancelled: bool


_BODY = ("filename", "attributes", "chunking", "usage_bytes", "error")


class Attachments:
    """The attachments of the knowledge base whose SQLite file is `path`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30)
        connection.row_factory = sqlite3.Row
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    def put(self, attachment: Attachment) -> Attachment:
        """Add the attachment, or replace the one with its id (which keeps its place in the list)."""
        body = json.dumps({key: value for key, value in asdict(attachment).items() if key in _BODY})
        with self._connect() as db:
            db.execute(
                "INSERT INTO attachments (id, created, status, batch, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id)"
                " DO UPDATE SET created = excluded.created, status = excluded.status, batch = excluded.batch,"
                " body = excluded.body",
                (attachment.id, attachment.created, attachment.status, attachment.batch, body),
            )
        return attachment

    def get(self, attachment_id: str) -> Attachment | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM attachments WHERE id = ?", (attachment_id,)).fetchone()
        return None if row is None else _attachment(row)

    def all(self, status: str | None = None, batch: str | None = None) -> list[Attachment]:
        """The attachments, oldest first; only those with `status`, or of `batch`, if given."""
        clauses, params = [], []
        for column, value in (("status", status), ("batch", batch)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with self._connect() as db:
            return [_attachment(row) for row in db.execute(f"SELECT * FROM attachments{where} ORDER BY seq", params)]

    def abandoned(self) -> list[Attachment]:
        """The attachments in progress: one process writes the folder, so none is being indexed elsewhere."""
        return self.all("in_progress")

    def finish(
        self, attachment_id: str, status: Status, usage_bytes: int = 0, error: dict[str, str] | None = None
    ) -> bool:
        """Move an attachment in progress to `status`; False if it was not in progress (cancelled, deleted)."""
        current = self.get(attachment_id)
        if current is None or current.status != "in_progress":
            return False
        body = {**{key: getattr(current, key) for key in _BODY}, "usage_bytes": usage_bytes, "error": error}
        with self._connect() as db:
            changed = db.execute(
                "UPDATE attachments SET status = ?, body = ? WHERE id = ? AND status = 'in_progress'",
                (status, json.dumps(body), attachment_id),
            ).rowcount
        return bool(changed)

    def set_attributes(self, attachment_id: str, attributes: dict[str, Any]) -> Attachment | None:
        current = self.get(attachment_id)
        if current is None:
            return None
        return self.put(Attachment(**{**asdict(current), "attributes": attributes}))

    def delete(self, attachment_id: str) -> bool:
        with self._connect() as db:
            return bool(db.execute("DELETE FROM attachments WHERE id = ?", (attachment_id,)).rowcount)

    def add_batch(self, batch_id: str, created: int | None = None) -> Batch:
        created = int(time.time()) if created is None else created
        with self._connect() as db:
            db.execute("INSERT INTO attachment_batches (id, created) VALUES (?, ?)", (batch_id, created))
        return Batch(batch_id, created, False)

    def batch(self, batch_id: str) -> Batch | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM attachment_batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else Batch(row["id"], row["created"], bool(row["cancelled"]))

    def cancel_batch(self, batch_id: str) -> None:
        """Mark the batch cancelled and its attachments still in progress "cancelled", in one transaction."""
        with self._connect() as db:
            db.execute("UPDATE attachment_batches SET cancelled = 1 WHERE id = ?", (batch_id,))
            db.execute("UPDATE attachments SET status = 'cancelled' WHERE batch = ? AND status = 'in_progress'",
                       (batch_id,))  # fmt: skip

    def document_bytes(self) -> int:
        """The bytes of every document of the knowledge base, attached or uploaded otherwise."""
        with self._connect() as db:
            return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM documents").fetchone()[0])


def _attachment(row: sqlite3.Row) -> Attachment:
    body = json.loads(row["body"])
    return Attachment(row["id"], row["created"], row["status"], row["batch"], **body)
