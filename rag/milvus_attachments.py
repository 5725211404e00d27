"""Attachments on Milvus: `rag.attachments`'s interface and statuses, in two collections every gateway shares.

`lorag_attachments` holds a row per attached file, keyed `<kb>/<attachment id>`: its status, batch
("" for none), a JSON body (filename, attributes, chunking, bytes used, last error), `seq` (nanoseconds
at its first write, kept when it is replaced: `all` lists oldest first), and the `owner` (the gateway)
that last wrote it and when (`updated`). `lorag_attachment_batches` holds a row per batch, keyed
`<kb>/<batch id>`, with whether it was cancelled. Both are made by `rag.milvus_schema.connect`;
deleting a knowledge base deletes its rows (`remove_attachments`).

Milvus has no conditional update, so the folder's one-statement rules are kept this way:

- **Cancelling a batch is one write**, of its batch row: an attachment whose row is still in progress
  reads "cancelled" once its batch is. `finish` reads the row and the batch, and upserts the row only
  if it is in progress and the batch is not cancelled. If another gateway cancels the batch between
  that read and the upsert (one round trip), the file reads "completed" (or "failed"), with its
  documents in the index: as a cancellation a moment after the file completed reads on the folder
  too. The status and the index never disagree.
- **A delete leaves a tombstone** (a row keyed `<kb>/<id>#<seq>`, status "deleted", never listed)
  before it deletes the row; `finish` looks for it after its upsert, and if it is there deletes the
  row again and returns False (the caller then removes the documents). Whichever of the two writes
  first, the other sees it (Strong consistency), so a finish never brings a deleted file back. (The
  gateway removes a file's documents before it deletes the file: documents its indexing commits after
  that removal, by a finish that saw no tombstone, stay unlisted, as on the folder when a delete and
  the end of indexing overlap in one gateway.)

Within one process every read-then-write also holds one lock. `abandoned` is what a gateway indexes
again when it first uses a store: the attachments in progress that this gateway left (the same
`owner` after a restart) or that no gateway wrote for `stale_after_s`, not those another live gateway
is indexing. This module knows nothing about files' content, chunking or indexes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, replace
from typing import Any

from pymilvus import MilvusClient

from rag.attachments import Attachment, Batch, Status
from rag.milvus_documents import MilvusDocuments
from rag.milvus_schema import ATTACHMENT_BATCHES, ATTACHMENTS, PLACEHOLDER, quoted, rows

_BODY = ("filename", "attributes", "chunking", "usage_bytes", "error")
_FIELDS = ["key", "id", "seq", "created", "status", "batch", "body", "owner", "updated"]
_DELETED = "deleted"
_LOCK = threading.RLock()
"""Held by every read-then-write of this process."""


class MilvusAttachments:
    """The attachments of knowledge base `kb`, written as gateway `owner`."""

    def __init__(self, client: MilvusClient, kb: str, *, owner: str, stale_after_s: float):
        self.client, self.kb, self.owner, self.stale_after_s = client, kb, owner, stale_after_s

    def put(self, attachment: Attachment) -> Attachment:
        """Add the attachment, or replace the one with its id (which keeps its place in the list)."""
        with _LOCK:
            current = self._row(attachment.id)
            self._write(attachment, current["seq"] if current else time.time_ns())
        return attachment

    def get(self, attachment_id: str) -> Attachment | None:
        row = self._row(attachment_id)
        return None if row is None else self._read(row)

    def all(self, status: str | None = None, batch: str | None = None) -> list[Attachment]:
        """The attachments, oldest first; only those with `status`, or of `batch`, if given."""
        found = [_attachment(row, self._cancelled()) for row in self._rows(batch)]
        return [attachment for attachment in found if status is None or attachment.status == status]

    def abandoned(self) -> list[Attachment]:
        """The attachments in progress that no live gateway is indexing (see the module docstring)."""
        stale, cancelled = time.time() - self.stale_after_s, self._cancelled()
        mine = [_attachment(row, cancelled) for row in self._rows(None)
                if row["owner"] == self.owner or row["updated"] < stale]  # fmt: skip
        return [attachment for attachment in mine if attachment.status == "in_progress"]

    def finish(
        self, attachment_id: str, status: Status, usage_bytes: int = 0, error: dict[str, str] | None = None
    ) -> bool:
        """Move an attachment in progress to `status`; False if it was not in progress (cancelled, deleted)."""
        with _LOCK:
            row = self._row(attachment_id)
            if row is None or (current := self._read(row)).status != "in_progress":
                return False
            self._write(replace(current, status=status, usage_bytes=usage_bytes, error=error), row["seq"])
            if self._row(f"{attachment_id}#{row['seq']}") is not None:  # deleted meanwhile, by another gateway
                self.client.delete(ATTACHMENTS, filter=f"key == {quoted(self._key(attachment_id))}")
                return False
        return True

    def set_attributes(self, attachment_id: str, attributes: dict[str, Any]) -> Attachment | None:
        with _LOCK:
            current = self.get(attachment_id)
            return None if current is None else self.put(replace(current, attributes=attributes))

    def delete(self, attachment_id: str) -> bool:
        with _LOCK:
            row = self._row(attachment_id)
            if row is None:
                return False
            self.client.upsert(ATTACHMENTS, [{**self._fields(f"{attachment_id}#{row['seq']}"), "id": attachment_id,
                                              "seq": row["seq"], "created": row["created"], "status": _DELETED,
                                              "batch": "", "body": {}}])  # fmt: skip
            self.client.delete(ATTACHMENTS, filter=f"key == {quoted(self._key(attachment_id))}")
        return True

    def add_batch(self, batch_id: str, created: int | None = None) -> Batch:
        batch = Batch(batch_id, int(time.time()) if created is None else created, False)
        self._write_batch(batch)
        return batch

    def batch(self, batch_id: str) -> Batch | None:
        found = self.client.query(ATTACHMENT_BATCHES, filter=f"key == {quoted(self._key(batch_id))}",
                                  output_fields=["id", "created", "cancelled"])  # fmt: skip
        return Batch(found[0]["id"], int(found[0]["created"]), bool(found[0]["cancelled"])) if found else None

    def cancel_batch(self, batch_id: str) -> None:
        """Mark the batch cancelled: its attachments still in progress are "cancelled" from then on."""
        batch = self.batch(batch_id)
        if batch is not None:
            self._write_batch(replace(batch, cancelled=True))

    def document_bytes(self) -> int:
        """The bytes of every document of the knowledge base, attached or uploaded otherwise."""
        return sum(record.size for record in MilvusDocuments(self.client, self.kb).documents())

    def _key(self, item_id: str) -> str:
        return f"{self.kb}/{item_id}"

    def _fields(self, item_id: str) -> dict[str, Any]:
        return {"key": self._key(item_id), "kb": self.kb, "owner": self.owner, "updated": int(time.time()),
                "_v": PLACEHOLDER}  # fmt: skip

    def _row(self, item_id: str) -> dict[str, Any] | None:
        found = self.client.query(ATTACHMENTS, filter=f"key == {quoted(self._key(item_id))}", output_fields=_FIELDS)
        return dict(found[0]) if found else None

    def _read(self, row: dict[str, Any]) -> Attachment:
        batch = self.batch(row["batch"]) if row["batch"] and row["status"] == "in_progress" else None
        return _attachment(row, {batch.id} if batch and batch.cancelled else set())

    def _rows(self, batch: str | None) -> list[dict[str, Any]]:
        where = f"kb == {quoted(self.kb)} and status != {quoted(_DELETED)}"
        where += f" and batch == {quoted(batch)}" if batch is not None else ""
        return sorted(rows(self.client, ATTACHMENTS, where, _FIELDS), key=lambda row: (row["seq"], row["id"]))

    def _cancelled(self) -> set[str]:
        where = f"kb == {quoted(self.kb)} and cancelled == true"
        return {row["id"] for row in rows(self.client, ATTACHMENT_BATCHES, where, ["id"])}

    def _write(self, attachment: Attachment, seq: int) -> None:
        body = {key: value for key, value in asdict(attachment).items() if key in _BODY}
        self.client.upsert(ATTACHMENTS, [{**self._fields(attachment.id), "id": attachment.id, "seq": seq,
                                          "created": attachment.created, "status": attachment.status,
                                          "batch": attachment.batch or "", "body": body}])  # fmt: skip

    def _write_batch(self, batch: Batch) -> None:
        self.client.upsert(ATTACHMENT_BATCHES, [{"key": self._key(batch.id), "kb": self.kb, "id": batch.id,
                                                 "created": batch.created, "cancelled": batch.cancelled,
                                                 "_v": PLACEHOLDER}])  # fmt: skip


def remove_attachments(client: MilvusClient, kb: str) -> None:
    """Delete every attachment, tombstone and batch row of knowledge base `kb`."""
    for collection in (ATTACHMENTS, ATTACHMENT_BATCHES):
        client.delete(collection, filter=f"kb == {quoted(kb)}")


def _attachment(row: dict[str, Any], cancelled_batches: set[str]) -> Attachment:
    """The row as an attachment: one in progress whose batch was cancelled is "cancelled"."""
    status = "cancelled" if row["status"] == "in_progress" and row["batch"] in cancelled_batches else row["status"]
    return Attachment(row["id"], int(row["created"]), status, row["batch"] or None, **dict(row["body"] or {}))
