"""The attachments of a knowledge base (a vector store's files), on the folder's SQLite and on Milvus alike.

Both backends run the same checks through the ``kb`` fixture: order, replacement, statuses, batches, the
rule that only an attachment in progress is finished (a cancellation or delete that came first wins), and
the bytes of the documents. Milvus has what only it needs: gateways that share the rows, what each one
indexes again, and the race a read-then-write leaves open between gateways.
"""

from __future__ import annotations

from rag.attachments import Attachment, Attachments
from rag.folder import DATABASE
from rag.milvus_attachments import MilvusAttachments
from rag.store import KnowledgeBase
from tests.rag.conftest import milvus_bases

PARIS = b"Paris is the capital of France. The Eiffel Tower stands in Paris."


def attachments_of(kb):
    if isinstance(kb, KnowledgeBase):
        return Attachments(kb.path / DATABASE)
    return kb.bases.attachments(kb.name)


def attached(file_id: str, created: int = 100, batch: str | None = None, **fields) -> Attachment:
    return Attachment(file_id, created, "in_progress", batch, f"{file_id}.txt", **fields)


def test_attachments_keep_their_order_statuses_and_attributes(kb):
    table = attachments_of(kb)
    assert table.all() == [] and table.get("file-a") is None and table.document_bytes() == 0
    for file_id in ("file-b", "file-a", "file-c"):
        table.put(attached(file_id, attributes={"team": "ops"}, chunking={"chunk_size": 40, "chunk_overlap": 4}))
    table.put(attached("file-b", created=200, attributes={"team": "hr"}))  # replaced: keeps its place
    assert [a.id for a in table.all()] == ["file-b", "file-a", "file-c"]
    assert table.get("file-b") == attached("file-b", created=200, attributes={"team": "hr"})
    assert table.get("file-a").chunking == {"chunk_size": 40, "chunk_overlap": 4}
    assert table.finish("file-a", "completed", usage_bytes=65)
    assert not table.finish("file-a", "failed")  # no longer in progress
    error = {"code": "invalid_file", "message": "no text found"}
    assert table.finish("file-c", "failed", error=error)
    assert [(a.id, a.status, a.usage_bytes, a.error) for a in table.all()] == [
        ("file-b", "in_progress", 0, None), ("file-a", "completed", 65, None), ("file-c", "failed", 0, error),
    ]  # fmt: skip
    assert [a.id for a in table.all("completed")] == ["file-a"] and table.abandoned() == table.all("in_progress")
    assert table.set_attributes("file-a", {"year": 2024}).attributes == {"year": 2024}
    assert table.get("file-a").status == "completed" and table.set_attributes("file-x", {}) is None
    assert table.delete("file-a") and not table.delete("file-a") and table.get("file-a") is None
    assert not table.finish("file-a", "completed")  # a deleted file stays deleted
    assert [a.id for a in table.all()] == ["file-b", "file-c"]
    kb.ingest("paris.txt", PARIS)
    assert table.document_bytes() == len(PARIS)


def test_cancelling_a_batch_cancels_its_files_in_progress_and_wins_over_a_later_finish(kb):
    table = attachments_of(kb)
    assert table.batch("vsfb_1") is None
    made = table.add_batch("vsfb_1", created=7)
    assert (made.id, made.created, made.cancelled) == ("vsfb_1", 7, False) and table.batch("vsfb_1") == made
    for file_id in ("file-a", "file-b"):
        table.put(attached(file_id, batch="vsfb_1"))
    table.put(attached("file-c"))
    assert table.finish("file-a", "completed")
    table.cancel_batch("vsfb_1")
    assert table.batch("vsfb_1").cancelled
    assert [(a.id, a.status) for a in table.all(batch="vsfb_1")] == [("file-a", "completed"), ("file-b", "cancelled")]
    assert [a.id for a in table.all("cancelled")] == ["file-b"] and table.get("file-b").status == "cancelled"
    assert not table.finish("file-b", "completed")  # the cancellation came first
    assert [a.id for a in table.abandoned()] == ["file-c"]
    table.put(attached("file-b"))  # attached again, outside the batch: in progress again
    assert table.get("file-b").status == "in_progress" and table.finish("file-b", "completed")


def test_gateways_share_the_attachments_and_index_again_only_what_no_live_gateway_is_indexing(request, milvus_db):
    one, two = milvus_bases(request, db_name=milvus_db), milvus_bases(request, db_name=milvus_db, owner="other")
    one.create("store")
    mine, theirs = one.attachments("store"), two.attachments("store")
    mine.put(attached("file-a"))
    theirs.put(attached("file-b"))
    assert [a.id for a in theirs.all()] == ["file-a", "file-b"]  # each sees the other's, in order
    assert [a.id for a in mine.abandoned()] == ["file-a"]  # file-b is the other live gateway's
    stale = MilvusAttachments(one.client, "store", owner=one.owner, stale_after_s=-1)
    assert [a.id for a in stale.abandoned()] == ["file-a", "file-b"]  # not written for stale_after_s: dead
    assert theirs.finish("file-a", "completed") and mine.get("file-a").status == "completed"
    one.delete("store")
    one.create("store")
    assert mine.all() == [] and mine.batch("vsfb_1") is None  # nothing of the deleted store comes back


def test_a_delete_or_cancel_between_finishs_read_and_write_through_another_gateway(request, milvus_db, monkeypatch):
    one, two = milvus_bases(request, db_name=milvus_db), milvus_bases(request, db_name=milvus_db, owner="other")
    one.create("store")
    mine, theirs = one.attachments("store"), two.attachments("store")
    mine.add_batch("vsfb_1")
    mine.put(attached("file-a", batch="vsfb_1"))
    mine.put(attached("file-b", batch="vsfb_1"))
    write = MilvusAttachments._write

    def meanwhile(other_call):
        def racing(self, attachment, seq):
            monkeypatch.setattr(MilvusAttachments, "_write", write)
            other_call()  # lands after finish's read, before its write
            write(self, attachment, seq)

        monkeypatch.setattr(MilvusAttachments, "_write", racing)

    meanwhile(lambda: theirs.delete("file-a"))
    assert not mine.finish("file-a", "completed")  # the delete's tombstone is seen: not brought back
    assert mine.get("file-a") is None and theirs.get("file-a") is None
    meanwhile(lambda: theirs.cancel_batch("vsfb_1"))
    assert mine.finish("file-b", "completed")  # as a cancellation a moment after completion
    assert mine.get("file-b").status == "completed" and theirs.batch("vsfb_1").cancelled
    assert [a.id for a in mine.all()] == ["file-b"]
