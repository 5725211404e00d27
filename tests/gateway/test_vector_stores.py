"""OpenAI's vector-store API through the official SDK, on the fake engine and the hashing embedder.

A vector store is a knowledge base ("one store, one index, two doors"): these tests drive every
call of ``client.vector_stores`` (the ``*_and_poll`` helpers included), search with OpenAI's
filters on file attributes, and check that each door sees what the other made. Every test runs on both
knowledge-base backends: the folder, and Milvus (the session's milvus-lite server, a fresh database per test).
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import ExitStack

import openai
import pytest

from gateway.api.app import create_app
from gateway.cli.loopback import serving
from gateway.errors import LoragError
from gateway.knowledge.vector_store_files import StoreFiles
from rag.milvus_schema import ATTACHMENTS, DOCUMENTS
from serve.adapters import AdapterRegistry
from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine
from tests.gateway.conftest import Served, fake_settings

BRIDGE = b"# Bridges\n\nThe Zorblat bridge in Quenville was painted teal in 1987 by the harbour guild.\n"
BREAD = b"Sourdough bread needs a starter of flour and water that is fed every day."
TRAINS = b"The night train to Quenville leaves at midnight from platform nine."


@pytest.fixture(params=["folder", "milvus"])
def make_app(request, adapters_dir):
    """``make_app(**settings)``: (the app, served) over the fake engine, until the test ends; on either backend."""
    yield from app_maker(adapters_dir, backend(request))


def backend(request) -> dict:
    """The settings of the backend a test is parametrized with: none for the folder, the URI and database of the
    session's Milvus."""
    if request.param == "folder":
        return {}
    return {"milvus_uri": request.getfixturevalue("milvus_uri"), "milvus_db": request.getfixturevalue("milvus_db")}


def app_maker(adapters_dir, defaults: dict | None = None):
    with ExitStack() as stack:

        def make(**settings):
            engine = FakeEngine()
            registry = AdapterRegistry(adapters_dir, engine.info.base_model, FAKE_SHA256, engine.info.limits)
            app = create_app(engine, registry, fake_settings(adapters_dir, **((defaults or {}) | settings)))
            return app, Served(stack.enter_context(serving(app)), engine, adapters_dir)

        yield make


@pytest.fixture
def served(make_app):
    return make_app()


@pytest.fixture
def client(served):
    return served[1].client()


def upload(client, name: str, data: bytes) -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def names(page) -> list[str]:
    return [hit.filename for hit in page]


def test_create_list_retrieve_modify_and_delete_a_store(client):
    made = [client.vector_stores.create(name=f"store {i}", metadata={"i": str(i)}) for i in range(3)]
    assert all(store.id.startswith("vs_") and store.status == "completed" for store in made)
    assert made[0].file_counts.total == 0 and made[0].usage_bytes == 0 and made[0].metadata == {"i": "0"}
    first = client.vector_stores.list(limit=2, order="asc")
    assert [s.id for s in first.data] == [made[0].id, made[1].id] and first.has_more
    second = client.vector_stores.list(limit=2, order="asc", after=first.data[-1].id)
    assert [s.id for s in second.data] == [made[2].id] and not second.has_more
    assert [s.id for s in client.vector_stores.list(order="asc", before=made[2].id, limit=1).data] == [made[1].id]
    assert [s.id for s in client.vector_stores.list()] == [s.id for s in reversed(made)]  # newest first, all pages
    changed = client.vector_stores.update(
        made[0].id, name="renamed", metadata={"team": "ops"}, expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert (changed.name, changed.metadata, changed.expires_after.days) == ("renamed", {"team": "ops"}, 2)
    assert changed.expires_at == changed.last_active_at + 2 * 86400
    kept = client.vector_stores.update(made[0].id, metadata={"team": "hr"})
    assert kept.name == "renamed" and kept.expires_after.days == 2  # what is left out is kept
    assert client.vector_stores.update(made[0].id, expires_after=None).expires_at is None
    deleted = client.vector_stores.delete(made[0].id)
    assert (deleted.id, deleted.deleted, deleted.object) == (made[0].id, True, "vector_store.deleted")
    with pytest.raises(openai.NotFoundError) as missing:
        client.vector_stores.retrieve(made[0].id)
    assert missing.value.code == "vector_store_not_found" and missing.value.body["type"] == "invalid_request_error"


def test_files_upload_and_poll_search_content_update_and_delete(client):
    store = client.vector_stores.create(name="docs")
    bridge = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=("bridge.md", BRIDGE))
    assert (bridge.status, bridge.last_error, bridge.vector_store_id) == ("completed", None, store.id)
    assert bridge.usage_bytes == len(BRIDGE) and bridge.chunking_strategy.type == "static"
    bread = client.vector_stores.files.create_and_poll(
        file_id=upload(client, "bread.txt", BREAD), vector_store_id=store.id, attributes={"team": "kitchen"},
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}},
    )  # fmt: skip
    assert bread.status == "completed" and bread.attributes == {"team": "kitchen"}
    assert bread.chunking_strategy.static.max_chunk_size_tokens == 100
    assert bread.chunking_strategy.static.chunk_overlap_tokens == 50
    found = client.vector_stores.search(store.id, query="Zorblat bridge colour")
    assert found.data[0].file_id == bridge.id and found.data[0].filename == "bridge.md"
    assert "teal" in found.data[0].content[0].text and found.data[0].content[0].type == "text"
    assert found.search_query == ["Zorblat bridge colour"] and 0 < found.data[0].score <= 1
    several = client.vector_stores.search(store.id, query=["Zorblat bridge", "sourdough starter"], max_num_results=5)
    assert set(names(several)) == {"bridge.md", "bread.txt"}
    content = list(client.vector_stores.files.content(bread.id, vector_store_id=store.id))
    assert [(c.type, c.text) for c in content] == [("text", BREAD.decode())]
    listed = client.vector_stores.files.list(store.id, order="asc")
    assert [f.id for f in listed.data] == [bridge.id, bread.id]
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="failed").data] == []
    assert client.vector_stores.files.retrieve(bread.id, vector_store_id=store.id).attributes == {"team": "kitchen"}
    updated = client.vector_stores.files.update(bread.id, vector_store_id=store.id, attributes={"team": "bakery"})
    assert updated.attributes == {"team": "bakery"}
    bakery = {"type": "eq", "key": "team", "value": "bakery"}
    assert names(client.vector_stores.search(store.id, query="bread", filters=bakery)) == ["bread.txt"]
    kitchen = {"type": "eq", "key": "team", "value": "kitchen"}
    assert names(client.vector_stores.search(store.id, query="bread", filters=kitchen)) == []
    whole = client.vector_stores.retrieve(store.id)
    assert whole.file_counts.completed == whole.file_counts.total == 2 and whole.usage_bytes == len(BRIDGE) + len(BREAD)
    deleted = client.vector_stores.files.delete(bridge.id, vector_store_id=store.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (bridge.id, True, "vector_store.file.deleted")
    assert "bridge.md" not in names(client.vector_stores.search(store.id, query="Zorblat bridge teal"))
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(bridge.id, vector_store_id=store.id)
    assert client.files.retrieve(bridge.id).filename == "bridge.md"  # the uploaded file stays


def test_search_filters_on_attributes_comparison_and_compound(client):
    store = client.vector_stores.create(name="reports")
    for name, team, year in (("a.txt", "ops", 2021), ("b.txt", "hr", 2023), ("c.txt", "ops", 2024)):
        data = f"Harbour report {name} of team {team}.".encode()
        client.vector_stores.files.create_and_poll(
            file_id=upload(client, name, data), vector_store_id=store.id, attributes={"team": team, "year": year}
        )

    def search(filters, **options):
        return sorted(names(client.vector_stores.search(store.id, query="harbour report", filters=filters, **options)))

    assert search({"type": "eq", "key": "team", "value": "ops"}) == ["a.txt", "c.txt"]
    assert search({"type": "nin", "key": "team", "value": ["ops"]}) == ["b.txt"]
    assert search({"type": "gte", "key": "year", "value": 2023}) == ["b.txt", "c.txt"]
    either = {
        "type": "or",
        "filters": [{"type": "lt", "key": "year", "value": 2022}, {"type": "eq", "key": "year", "value": 2030}],
    }
    compound = {"type": "and", "filters": [{"type": "eq", "key": "team", "value": "ops"}, either]}
    assert search(compound) == ["a.txt"]
    hits = client.vector_stores.search(
        store.id, query="harbour report", filters={"type": "eq", "key": "team", "value": "hr"}
    )
    assert hits.data[0].attributes == {"team": "hr", "year": 2023}
    assert search(None, ranking_options={"ranker": "default-2024-11-15", "score_threshold": 0.0}) == [
        "a.txt", "b.txt", "c.txt",
    ]  # fmt: skip
    top = client.vector_stores.search(store.id, query="harbour report", ranking_options={"score_threshold": 1.0})
    assert len(top.data) < 3 and all(hit.score >= 1.0 for hit in top.data)  # only a chunk first in both rankings
    dense_only = client.vector_stores.search(store.id, query="harbour", ranking_options={"ranker": "none"})
    assert len(dense_only.data) == 3


def test_bad_filters_and_options_are_400_before_any_work(client, monkeypatch):
    store = client.vector_stores.create(name="docs")
    calls = []
    monkeypatch.setattr("gateway.knowledge.vector_stores.retrieve", lambda *a, **k: calls.append(a) or [])
    for filters, named in (
        ({"type": "equals", "key": "team", "value": "ops"}, "'equals'"),
        ({"type": "and", "filters": [{"type": "eq", "key": "team"}]}, "needs a value"),
        ({"type": "in", "key": "team", "value": "ops"}, "list of values"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.vector_stores.search(store.id, query="x", filters=filters)
        assert refused.value.param.startswith("filters") and named in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.vector_stores.search(store.id, query="x", rewrite_query=True)
    assert refused.value.param == "rewrite_query"
    assert calls == []


def test_batches_create_and_poll_upload_and_poll_and_list_files(client):
    store = client.vector_stores.create(name="docs")
    ids = [upload(client, "bread.txt", BREAD), upload(client, "trains.txt", TRAINS)]
    batch = client.vector_stores.file_batches.create_and_poll(vector_store_id=store.id, file_ids=ids,
                                                              attributes={"source": "batch"})  # fmt: skip
    assert (batch.status, batch.file_counts.completed, batch.file_counts.total) == ("completed", 2, 2)
    assert batch.id.startswith("vsfb_") and batch.object == "vector_store.files_batch"
    files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, order="asc")
    assert [f.id for f in files.data] == ids and all(f.attributes == {"source": "batch"} for f in files.data)
    each = client.vector_stores.file_batches.create(
        vector_store_id=store.id, files=[{"file_id": upload(client, "bridge.md", BRIDGE), "attributes": {"n": 1}}]
    )
    done = client.vector_stores.file_batches.poll(each.id, vector_store_id=store.id)
    assert done.status == "completed" and client.vector_stores.file_batches.retrieve(each.id, vector_store_id=store.id)
    uploaded = client.vector_stores.file_batches.upload_and_poll(store.id, files=[("x.md", b"# X\n\nExes.")])
    assert uploaded.file_counts.completed == 1
    assert client.vector_stores.retrieve(store.id).file_counts.total == 4
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids, files=[{"file_id": ids[0]}])


def held_indexing(monkeypatch) -> threading.Event:
    """Make every file's indexing wait (at most 10 s) until the returned event is set."""
    release, original = threading.Event(), StoreFiles._index

    def slow(self, *args):
        release.wait(10)
        return original(self, *args)

    monkeypatch.setattr(StoreFiles, "_index", slow)
    return release


def test_cancelling_a_batch_cancels_its_files_and_keeps_nothing_they_made(served, monkeypatch):
    app, gateway = served
    client = gateway.client()
    release = held_indexing(monkeypatch)
    store = client.vector_stores.create(name="docs")
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[upload(client, "b.txt", BREAD)]
    )
    assert batch.status == "in_progress" and client.vector_stores.retrieve(store.id).status == "in_progress"
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 1
    release.set()
    for _ in range(100):
        if not app.state.vector_stores.files._tasks:
            break
        threading.Event().wait(0.02)
    assert client.vector_stores.search(store.id, query="sourdough bread").data == []
    assert client.vector_stores.retrieve(store.id).status == "completed"


def test_a_file_that_cannot_be_indexed_fails_with_last_error_and_leaves_nothing(served, monkeypatch):
    app, gateway = served
    client = gateway.client()
    store = client.vector_stores.create(name="docs")
    broken = upload(client, "notes.txt", b"Readable at upload time.")
    app.state.gateway.fine_tuning.file(broken)[1].write_bytes(b"\xff\xfe\xfd" * 50 + b"\x00\x81" * 50)
    failed = client.vector_stores.files.create_and_poll(file_id=broken, vector_store_id=store.id)
    assert failed.status == "failed" and failed.last_error.code == "invalid_file"
    assert "notes.txt" in failed.last_error.message
    monkeypatch.setattr("rag.embedder.HashingEmbedder.embed", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    crashed = client.vector_stores.files.create_and_poll(
        file_id=upload(client, "b.txt", BREAD), vector_store_id=store.id
    )
    assert (
        crashed.status == "failed"
        and crashed.last_error.code == "server_error"
        and "disk full" in crashed.last_error.message
    )
    monkeypatch.undo()
    counted = client.vector_stores.retrieve(store.id)
    assert (counted.status, counted.file_counts.failed, counted.file_counts.total) == ("completed", 2, 2)
    assert client.vector_stores.search(store.id, query="sourdough bread starter").data == []
    with served[1].http() as http:
        assert http.get(f"/v1/knowledge_bases/{store.id}/documents").json()["data"] == []
    retried = client.vector_stores.files.create_and_poll(file_id=crashed.id, vector_store_id=store.id)
    assert retried.status == "completed" and retried.last_error is None


def test_files_take_documents_for_assistants_and_refuse_what_no_loader_reads(client):
    notes = b"# Notes\n\nSome notes."
    uploaded = client.files.create(file=("notes.md", notes), purpose="user_data")
    assert (uploaded.purpose, uploaded.filename, uploaded.bytes) == ("user_data", "notes.md", len(notes))
    for name, data, named in (
        ("program.exe", b"MZ\x90\x00", "unsupported file type '.exe'"),
        ("empty.txt", b"   \n", "no text found"),
        ("broken.json", b"{not json", "invalid JSON"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.create(file=(name, data), purpose="assistants")
        assert refused.value.param == "file" and named in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("a.txt", b"text"), purpose="batch")
    assert refused.value.param == "purpose"


def test_bad_input_loses_nothing(client):
    store = client.vector_stores.create(name="docs")
    kept = client.vector_stores.files.create_and_poll(file_id=upload(client, "b.txt", BREAD), vector_store_id=store.id)
    before = [s.id for s in client.vector_stores.list()]
    with pytest.raises(openai.NotFoundError) as missing:
        client.vector_stores.create(name="x", file_ids=["file-nope"])
    assert missing.value.param == "file_id"
    assert [s.id for s in client.vector_stores.list()] == before  # no store was made
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[kept.id, "file-nope"])
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.files.create(vector_store_id=store.id, file_id=kept.id, attributes={"file_id": "x"})
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.update(store.id, metadata={f"k{i}": "v" for i in range(17)})
    files = client.vector_stores.files.list(store.id).data
    assert [(f.id, f.status) for f in files] == [(kept.id, "completed")]
    assert client.vector_stores.retrieve(store.id).name == "docs"
    assert names(client.vector_stores.search(store.id, query="sourdough")) == ["b.txt"]


def test_deleting_a_store_while_a_file_is_indexed_leaves_nothing_behind(served, monkeypatch):
    app, gateway = served
    client = gateway.client()
    release = held_indexing(monkeypatch)
    store = client.vector_stores.create(name="docs")
    attached = client.vector_stores.files.create(vector_store_id=store.id, file_id=upload(client, "b.txt", BREAD))
    assert attached.status == "in_progress"
    assert client.vector_stores.delete(store.id).deleted
    release.set()
    for _ in range(100):
        if not app.state.vector_stores.files._tasks:
            break
        threading.Event().wait(0.02)
    bases = app.state.gateway.knowledge.bases
    assert bases.list() == []
    if hasattr(bases, "root"):
        assert [path.name for path in bases.root.iterdir()] == []
    else:
        assert count(bases.client, ATTACHMENTS, store.id) == count(bases.client, DOCUMENTS, store.id) == 0
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(attached.id, vector_store_id=store.id)


def count(client, collection: str, kb: str) -> int:
    """Rows of knowledge base ``kb`` in a shared Milvus collection."""
    return client.query(collection, filter=f'kb == "{kb}"', output_fields=["count(*)"])[0]["count(*)"]


def test_two_gateways_on_one_milvus_share_a_stores_files(make_app, request, tmp_path, monkeypatch):
    if request.node.callspec.params["make_app"] != "milvus":
        pytest.skip("one gateway per knowledge-base folder")
    app_a, served_a = make_app()
    app_b, served_b = make_app(kb_dir=tmp_path / "kbs-b")  # another gateway: another owner, the same Milvus
    a, b = served_a.client(), served_b.client()
    release = held_indexing(monkeypatch)
    store = a.vector_stores.create(name="shared")
    bread = a.vector_stores.files.create(vector_store_id=store.id, file_id=upload(a, "bread.txt", BREAD),
                                         attributes={"team": "kitchen"})  # fmt: skip
    seen = b.vector_stores.files.retrieve(bread.id, vector_store_id=store.id)
    assert seen.status == "in_progress" and not app_b.state.vector_stores.files._tasks  # a's to index, not b's
    release.set()
    done = b.vector_stores.files.poll(bread.id, vector_store_id=store.id, poll_interval_ms=20)
    assert (done.status, done.usage_bytes) == ("completed", len(BREAD))
    kitchen = {"type": "eq", "key": "team", "value": "kitchen"}
    assert names(b.vector_stores.search(store.id, query="sourdough bread", filters=kitchen)) == ["bread.txt"]
    b.vector_stores.files.update(bread.id, vector_store_id=store.id, attributes={"team": "bakery"})
    bakery = {"type": "eq", "key": "team", "value": "bakery"}
    assert names(a.vector_stores.search(store.id, query="sourdough bread", filters=bakery)) == ["bread.txt"]
    assert a.vector_stores.search(store.id, query="sourdough bread", filters=kitchen).data == []
    batch = b.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[upload(b, "t.txt", TRAINS)]
    )
    assert batch.status == "completed"
    [trains] = b.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id).data
    assert [f.id for f in a.vector_stores.files.list(store.id, order="asc")] == [bread.id, trains.id]
    assert b.vector_stores.files.delete(bread.id, vector_store_id=store.id).deleted
    assert "bread.txt" not in names(a.vector_stores.search(store.id, query="sourdough bread"))
    assert a.vector_stores.retrieve(store.id).file_counts.total == 1
    assert b.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        a.vector_stores.retrieve(store.id)


def test_indexing_a_completed_file_again_keeps_its_documents(served):
    """What another gateway's late task for the same file does (on Milvus a slow gateway's, taken for dead)."""
    app, gateway = served
    client = gateway.client()
    store = client.vector_stores.create(name="docs")
    bread = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=upload(client, "b.txt", BREAD))
    files = app.state.vector_stores.files
    asyncio.run(files._ingest(store.id, files.get(store.id, bread.id)))  # completed already: adds nothing
    files.source = lambda file_id: (_ for _ in ()).throw(LoragError(404, "gone from /v1/files"))
    asyncio.run(files._ingest(store.id, files.get(store.id, bread.id)))  # fails: removes nothing
    assert client.vector_stores.files.retrieve(bread.id, vector_store_id=store.id).status == "completed"
    assert names(client.vector_stores.search(store.id, query="sourdough bread")) == ["b.txt"]
