"""Stored responses on disk: one SQLite database of responses, their input items and their conversations.

A response is stored whole (its wire JSON, file search results included) with its owner (the
name of the key that made it), its creation time, and its context: the conversation items the
model read before this response's input (what ``previous_response_id`` continues from, so a
continuation never depends on an older response still being there). Its input items are rows of
their own, ordered by ``seq``, so ``input_items`` pages with exact ``after`` cursors. Rows older
than the retention are deleted when the store opens and then at most once a minute as responses
are saved. Every write commits at once (WAL). A key sees only its own responses; an admin sees all.
The database opens on first use, so a gateway that serves no Responses request creates no file.
This module knows nothing about engines, translation or HTTP.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from gateway.api.auth import Principal
from gateway.responses.objects import ItemList, Response, StoredItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    owner TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL, context TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS input_items (seq INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT NOT NULL,
    id TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created);
CREATE INDEX IF NOT EXISTS items_of_response ON input_items (response_id, seq);
"""
ITEMS = TypeAdapter(list[StoredItem])
PRUNE_EVERY_S = 60.0


@dataclass
class Stored:
    """A stored response with what a continuation needs."""

    response: Response
    context: list[StoredItem]  # the conversation before this response's input
    input: list[StoredItem]

    def conversation(self) -> list[StoredItem]:
        """Every item of the conversation so far: the context, the input, the output."""
        return [*self.context, *self.input, *self.response.output]


class ResponseStore:
    def __init__(self, path: Path, retention_days: float):
        self.path, self.retention_s = path, retention_days * 86400
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pruned = 0.0

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            self._db = db
            self._prune(db)
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _prune(self, db: sqlite3.Connection) -> None:
        now = time.time()
        self._pruned = now
        old = [row[0] for row in db.execute("SELECT id FROM responses WHERE created < ?", (now - self.retention_s,))]
        if old:
            marks = ",".join("?" * len(old))
            db.execute("BEGIN")
            db.execute(f"DELETE FROM input_items WHERE response_id IN ({marks})", old)
            db.execute(f"DELETE FROM responses WHERE id IN ({marks})", old)
            db.execute("COMMIT")

    def save(self, response: Response, owner: str, context: list[StoredItem], items: list[StoredItem]) -> None:
        with self._lock:
            db = self._open()
            if time.time() - self._pruned > PRUNE_EVERY_S:
                self._prune(db)
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO responses (id, owner, created, body, context) VALUES (?, ?, ?, ?, ?)",
                (response.id, owner, time.time(), response.model_dump_json(), ITEMS.dump_json(context).decode()),
            )
            db.executemany(
                "INSERT INTO input_items (response_id, id, body) VALUES (?, ?, ?)",
                [(response.id, item.id, item.model_dump_json()) for item in items],
            )
            db.execute("COMMIT")

    def _owned(self, db: sqlite3.Connection, response_id: str, principal: Principal) -> tuple | None:
        row = db.execute("SELECT owner, body, context FROM responses WHERE id = ?", (response_id,)).fetchone()
        if row is None or not (principal.admin or row[0] == principal.name):
            return None
        return row

    def get(self, response_id: str, principal: Principal) -> Stored | None:
        """The response, if it exists and ``principal`` may see it."""
        with self._lock:
            db = self._open()
            row = self._owned(db, response_id, principal)
            if row is None:
                return None
            rows = db.execute("SELECT body FROM input_items WHERE response_id = ? ORDER BY seq", (response_id,))
            items = ITEMS.validate_json("[" + ",".join(body for (body,) in rows) + "]")
        return Stored(Response.model_validate_json(row[1]), ITEMS.validate_json(row[2]), items)

    def delete(self, response_id: str, principal: Principal) -> bool:
        """Whether there was such a response for ``principal`` to delete."""
        with self._lock:
            db = self._open()
            if self._owned(db, response_id, principal) is None:
                return False
            db.execute("BEGIN")
            db.execute("DELETE FROM input_items WHERE response_id = ?", (response_id,))
            db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
            db.execute("COMMIT")
            return True

    def input_items(
        self, response_id: str, principal: Principal, after: str | None, limit: int, newest_first: bool
    ) -> ItemList | None:
        """One page of a response's input items; None if there is no such response for ``principal``."""
        order, beyond = ("DESC", "<") if newest_first else ("ASC", ">")
        where, params = "response_id = ?", [response_id]
        if after is not None:
            where += f" AND seq {beyond} COALESCE((SELECT seq FROM input_items WHERE response_id = ? AND id = ?), ?)"
            params += [response_id, after, -1 if not newest_first else 2**62]
        with self._lock:
            db = self._open()
            if self._owned(db, response_id, principal) is None:
                return None
            sql = f"SELECT body FROM input_items WHERE {where} ORDER BY seq {order} LIMIT ?"
            rows = db.execute(sql, [*params, limit + 1]).fetchall()
        data = ITEMS.validate_json("[" + ",".join(body for (body,) in rows[:limit]) + "]")
        return ItemList(
            data=data, has_more=len(rows) > limit,
            first_id=data[0].id if data else None, last_id=data[-1].id if data else None,
        )  # fmt: skip
