"""Vector stores and knowledge bases are one thing behind two doors; who may see a store; expiry; restarts.

The same app answers ``/v1/knowledge_bases`` and ``/v1/vector_stores``: a store is a knowledge base
named by its id (chat with ``model@<id>``), a knowledge base is the store of its name. Keys come
from a keys file: a store belongs to the key that made it (others get 404, admins see all), and
a knowledge base without an owner is seen per the key's scopes and written by admins only. Every test runs
on both knowledge-base backends, the folder and Milvus.
"""

from __future__ import annotations

import time

import openai
import pytest

from gateway.knowledge.vector_stores import may_use
from rag.attachments import Attachment
from tests.gateway.test_vector_stores import BREAD, BRIDGE, app_maker, backend, names, upload

KEYS = """
keys:
  - name: team-a
    key: key-of-team-a
    knowledge_bases: [kb-a]
  - name: team-b
    key: key-of-team-b
    knowledge_bases: [kb-b]
  - name: everyone
    key: key-of-everyone
  - name: ops
    key: key-of-ops
    admin: true
"""
ASK = [{"role": "user", "content": "What colour is the Zorblat bridge?"}]


@pytest.fixture(params=["folder", "milvus"])
def make_app(request, adapters_dir):
    yield from app_maker(adapters_dir, backend(request))


@pytest.fixture
def keyed(make_app, tmp_path):
    """The app with the keys above and knowledge bases kb-a and kb-b (made by ops), each holding a document."""
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    app, served = make_app(keys_file=path)
    with served.http("key-of-ops") as http:
        for kb in ("kb-a", "kb-b"):
            assert http.post("/v1/knowledge_bases", json={"name": kb}).status_code == 201
            files = {"files": (f"{kb}.md", BRIDGE)}
            assert http.post(f"/v1/knowledge_bases/{kb}/documents", files=files).status_code == 201
    return app, served


def test_a_knowledge_base_is_a_vector_store_and_a_store_is_a_knowledge_base(make_app):
    _, served = make_app()
    client = served.client()
    with served.http() as http:
        assert http.post("/v1/knowledge_bases", json={"name": "bio"}).status_code == 201
        assert http.post("/v1/knowledge_bases/bio/documents", files={"files": ("bridge.md", BRIDGE)}).status_code == 201
        [document] = http.get("/v1/knowledge_bases/bio/documents").json()["data"]
    bio = client.vector_stores.retrieve("bio")
    assert (bio.id, bio.name, bio.status, bio.usage_bytes, bio.file_counts.total) == (
        "bio",
        "bio",
        "completed",
        len(BRIDGE),
        0,
    )
    hit = client.vector_stores.search("bio", query="Zorblat bridge").data[0]
    assert (hit.file_id, hit.filename) == (document["id"], "bridge.md")  # a document without a file: cited by its id
    attached = client.vector_stores.files.create_and_poll(
        file_id=upload(client, "bread.txt", BREAD), vector_store_id="bio"
    )
    assert attached.status == "completed"
    assert "bio" in [store.id for store in client.vector_stores.list()]

    store = client.vector_stores.create(name="Handbook", file_ids=[upload(client, "bridge.md", BRIDGE)])
    assert store.status == "in_progress" or store.file_counts.completed == 1
    for _ in range(200):
        if client.vector_stores.retrieve(store.id).status == "completed":
            break
        time.sleep(0.02)
    with served.http() as http:
        kb = http.get(f"/v1/knowledge_bases/{store.id}").json()
        assert (kb["id"], kb["documents"]) == (store.id, 1)
        [doc] = http.get(f"/v1/knowledge_bases/{store.id}/documents").json()["data"]
        assert doc["metadata"]["file_id"] == store_file_id(client, store.id)  # the contract: metadata key "file_id"
        searched = http.post(f"/v1/knowledge_bases/{store.id}/search", json={
            "query": "Zorblat", "filters": {"type": "eq", "key": "file_id", "value": doc["metadata"]["file_id"]},
        }).json()["data"]  # fmt: skip
        assert searched[0]["filename"] == "bridge.md"
    answer = client.chat.completions.create(model=f"fake-base@{store.id}", messages=ASK)
    assert "teal" in answer.choices[0].message.content  # the fake engine echoes the prompt with its sources
    assert answer.model_extra["citations"][0]["filename"] == "bridge.md"


def store_file_id(client, store_id: str) -> str:
    return client.vector_stores.files.list(store_id).data[0].id


def test_a_store_belongs_to_the_key_that_made_it(keyed):
    _, served = keyed
    team_a, team_b, everyone, ops = (served.client(f"key-of-{k}") for k in ("team-a", "team-b", "everyone", "ops"))
    store = team_a.vector_stores.create(name="mine")  # any key may create a store, whatever its scopes
    done = team_a.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=("bread.txt", BREAD))
    assert done.status == "completed"
    assert {s.id for s in team_a.vector_stores.list()} == {store.id, "kb-a"}
    for other in (team_b, everyone):
        assert store.id not in [s.id for s in other.vector_stores.list()]
        for call in (
            lambda c: c.vector_stores.retrieve(store.id),
            lambda c: c.vector_stores.search(store.id, query="bread"),
            lambda c: c.vector_stores.files.list(store.id),
            lambda c: c.vector_stores.update(store.id, name="taken"),
            lambda c: c.vector_stores.delete(store.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call(other)
        with served.http(other.api_key) as http:
            assert http.get(f"/v1/knowledge_bases/{store.id}").status_code == 404
    theirs = upload(team_b, "secret.txt", b"The vault code of team b is 4711.")
    with pytest.raises(openai.NotFoundError) as not_theirs:  # a key attaches only its own files
        team_a.vector_stores.files.create(vector_store_id=store.id, file_id=theirs)
    assert not_theirs.value.param == "file_id"
    with pytest.raises(openai.NotFoundError):
        team_a.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[theirs])
    with pytest.raises(openai.NotFoundError):
        team_a.vector_stores.create(name="grab", file_ids=[theirs])
    assert ops.vector_stores.retrieve(store.id).name == "mine"  # admins see every store
    assert names(ops.vector_stores.search(store.id, query="sourdough")) == ["bread.txt"]
    knowledge = keyed[0].state.gateway.knowledge
    principals = {principal.name: principal for _, principal in keyed[0].state.keys.keys}
    assert [may_use(knowledge, store.id, principals[k]) for k in ("team-a", "team-b", "everyone", "ops")] == [
        True, False, False, True,
    ]  # fmt: skip
    assert [may_use(knowledge, "kb-a", principals[k]) for k in ("team-a", "team-b", "everyone")] == [True, False, True]
    assert not may_use(knowledge, "no-such-kb", principals["ops"])
    for other in (team_b, everyone):  # nor through chat, nor in the model list
        with pytest.raises(openai.NotFoundError):
            other.chat.completions.create(model=f"fake-base@{store.id}", messages=ASK)
        assert f"fake-base@{store.id}" not in [m.id for m in other.models.list()]
    assert team_a.chat.completions.create(model=f"fake-base@{store.id}", messages=ASK).choices
    assert f"fake-base@{store.id}" in [m.id for m in team_a.models.list()]
    assert team_a.vector_stores.update(store.id, name="still mine").name == "still mine"
    assert team_a.vector_stores.delete(store.id).deleted


def test_key_scopes_apply_to_knowledge_bases_seen_as_stores_and_only_admins_write_them(keyed):
    _, served = keyed
    team_a, ops = served.client("key-of-team-a"), served.client("key-of-ops")
    assert names(team_a.vector_stores.search("kb-a", query="Zorblat")) == ["kb-a.md"]
    for call in (lambda: team_a.vector_stores.retrieve("kb-b"), lambda: team_a.vector_stores.search("kb-b", query="x")):
        with pytest.raises(openai.NotFoundError) as hidden:
            call()
        assert hidden.value.code == "vector_store_not_found"
    file_id = upload(team_a, "bread.txt", BREAD)
    with pytest.raises(openai.PermissionDeniedError):
        team_a.vector_stores.files.create(vector_store_id="kb-a", file_id=file_id)
    with pytest.raises(openai.PermissionDeniedError):
        team_a.vector_stores.delete("kb-a")
    assert team_a.vector_stores.files.list("kb-a").data == []
    assert ops.vector_stores.files.create_and_poll(vector_store_id="kb-a", file_id=file_id).status == "completed"
    with pytest.raises(openai.AuthenticationError):
        served.client("wrong-key").vector_stores.list()


def test_an_expired_store_reports_expired_and_is_swept(served_with_clock):
    app, client, clock = served_with_clock
    lasting = client.vector_stores.create(name="lasting")
    brief = client.vector_stores.create(name="brief", expires_after={"anchor": "last_active_at", "days": 1})
    assert brief.expires_at == brief.last_active_at + 86400 and brief.status == "completed"
    clock[0] += 86400 + 1
    assert client.vector_stores.retrieve(brief.id).status == "expired"
    with pytest.raises(openai.BadRequestError) as refused:
        client.vector_stores.search(brief.id, query="x")
    assert refused.value.code == "vector_store_expired"
    assert [s.id for s in client.vector_stores.list()] == [lasting.id]  # the sweep deleted it
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(brief.id)
    assert brief.id not in [m.name for m in app.state.gateway.knowledge.bases.list()]


@pytest.fixture
def served_with_clock(make_app):
    app, served = make_app()
    client = served.client()
    client.vector_stores.list()  # builds the service
    clock = [time.time()]
    app.state.vector_stores.clock = lambda: clock[0]
    return app, client, clock


def test_a_file_left_in_progress_by_a_stopped_gateway_is_indexed_on_the_next_start(make_app, tmp_path):
    app, served = make_app()
    client = served.client()
    store = client.vector_stores.create(name="docs")
    file_id = upload(client, "bread.txt", BREAD)
    bases = app.state.gateway.knowledge.bases
    kb = bases.get(store.id)
    chunking = {"chunk_size": kb.manifest.chunking.chunk_size, "chunk_overlap": kb.manifest.chunking.chunk_overlap}
    # what a gateway that stopped mid-indexing leaves: the file recorded in progress, no documents
    bases.attachments(store.id).put(Attachment(file_id, int(time.time()), "in_progress", filename="bread.txt",
                                               chunking=chunking))  # fmt: skip
    app.state.vector_stores = None  # a new gateway process: nothing running, nothing recovered yet
    recovered = client.vector_stores.files.poll(file_id, vector_store_id=store.id)
    assert recovered.status == "completed" and recovered.usage_bytes == len(BREAD)
    assert names(client.vector_stores.search(store.id, query="sourdough")) == ["bread.txt"]
