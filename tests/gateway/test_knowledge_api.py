"""Knowledge bases through the HTTP API and RAG chat through the openai client, on the fake engine.

The fake engine echoes the last user turn, so a retrieval-augmented answer shows exactly which
sources went into the prompt. Knowledge bases use the hashing embedder (see ``fake_settings``), and
every test runs on both backends: the folder, and Milvus (the session's milvus-lite server, a
fresh database per test).
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import openai
import pytest

FACT = "The Zorblat bridge in Quenville was painted teal in 1987 by the harbour guild."
OTHER = "Sourdough bread needs a starter of flour and water that is fed every day."
QUESTION = [{"role": "user", "content": "What colour is the Zorblat bridge?"}]


@pytest.fixture(params=["folder", "milvus"])
def make_gateway(request, make_gateway):
    """The conftest's ``make_gateway``, on the folder or on Milvus."""
    if request.param == "folder":
        return make_gateway
    milvus = {"milvus_uri": request.getfixturevalue("milvus_uri"), "milvus_db": request.getfixturevalue("milvus_db")}
    return lambda engine=None, **settings: make_gateway(engine, **(milvus | settings))


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


def upload(http, kb: str, *files: tuple[str, bytes], **form):
    payload = [("files", (name, data)) for name, data in files]
    return http.post(f"/v1/knowledge_bases/{kb}/documents", files=payload, data=form)


@pytest.fixture
def with_docs(gateway):
    """The gateway with knowledge base 'docs' holding the fact (bridge.md) and an unrelated text."""
    with gateway.http() as http:
        assert http.post("/v1/knowledge_bases", json={"name": "docs"}).status_code == 201
        response = upload(http, "docs", ("bridge.md", f"# Bridges\n\n{FACT}\n".encode()), ("bread.txt", OTHER.encode()))
        assert response.status_code == 201, response.text
    return gateway


def test_create_list_get_and_delete_a_knowledge_base(gateway):
    with gateway.http() as http:
        created = http.post("/v1/knowledge_bases", json={"name": "docs", "chunk_tokens": 64})
        assert created.status_code == 201
        kb = created.json()
        assert (kb["id"], kb["object"], kb["embedder"], kb["documents"], kb["chunks"]) == (
            "docs", "knowledge_base", "hashing-256", 0, 0,
        )  # fmt: skip
        assert kb["chunking"] == {"chunk_tokens": 64, "chunk_overlap": 8}
        listing = http.get("/v1/knowledge_bases").json()
        assert listing["object"] == "list" and [k["id"] for k in listing["data"]] == ["docs"]
        assert http.get("/v1/knowledge_bases/docs").json()["name"] == "docs"
        again = http.post("/v1/knowledge_bases", json={"name": "docs"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "knowledge_base_exists"
        bad = http.post("/v1/knowledge_bases", json={"name": "../etc"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
        deleted = http.delete("/v1/knowledge_bases/docs").json()
        assert deleted == {"id": "docs", "object": "knowledge_base.deleted", "deleted": True}
        missing = http.get("/v1/knowledge_bases/docs")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "knowledge_base_not_found"
        assert http.get("/v1/knowledge_bases").json()["data"] == []


def test_upload_lists_documents_and_a_repeat_upload_is_a_no_op(with_docs):
    with with_docs.http() as http:
        documents = http.get("/v1/knowledge_bases/docs/documents").json()["data"]
        assert [d["filename"] for d in documents] == ["bridge.md", "bread.txt"]
        assert all(d["object"] == "knowledge_base.document" and d["chunks"] >= 1 for d in documents)
        again = upload(http, "docs", ("bridge-copy.md", f"# Bridges\n\n{FACT}\n".encode()), metadata='{"team": "x"}')
        assert again.status_code == 201 and again.json()["data"][0]["id"] == documents[0]["id"]
        assert len(http.get("/v1/knowledge_bases/docs/documents").json()["data"]) == 2
        assert http.get("/v1/knowledge_bases/docs").json()["documents"] == 2


def test_search_finds_the_fact_and_a_deleted_document_is_no_longer_retrieved(with_docs):
    with with_docs.http() as http:
        hits = http.post("/v1/knowledge_bases/docs/search", json={"query": "Zorblat bridge colour"}).json()["data"]
        assert hits[0]["filename"] == "bridge.md" and "teal" in hits[0]["text"]
        assert hits[0]["section"] == "Bridges" and hits[0]["object"] == "knowledge_base.search_result"
        only_bread = http.post(
            "/v1/knowledge_bases/docs/search", json={"query": "Zorblat bridge", "filters": {"filename": "bread.txt"}}
        ).json()["data"]
        assert {hit["filename"] for hit in only_bread} == {"bread.txt"}
        document_id = hits[0]["document_id"]
        deleted = http.delete(f"/v1/knowledge_bases/docs/documents/{document_id}").json()
        assert deleted == {"id": document_id, "object": "knowledge_base.document.deleted", "deleted": True}
        after = http.post("/v1/knowledge_bases/docs/search", json={"query": "Zorblat bridge teal", "top_k": 10})
        assert all("Zorblat" not in hit["text"] for hit in after.json()["data"])
        again = http.delete(f"/v1/knowledge_bases/docs/documents/{document_id}")
        assert again.status_code == 404 and again.json()["error"]["code"] == "document_not_found"


@pytest.mark.parametrize(
    "files, status, code",
    [
        ([("tool.exe", b"MZ\x90\x00")], 415, "unsupported_file_type"),
        ([("empty.txt", b"   \n")], 400, "unreadable_document"),
        ([("report.pdf", b"%PDF-1.7 this is not a pdf")], 400, "unreadable_document"),
        ([("good.txt", b"A perfectly fine document."), ("broken.pdf", b"%PDF-garbage")], 400, "unreadable_document"),
        ([("big.txt", b"x" * 3000)], 413, "file_too_large"),
    ],
)
def test_bad_uploads_are_refused_naming_the_file_and_store_nothing(make_gateway, files, status, code):
    gateway = make_gateway(max_upload_mb=2000 / 2**20)
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})
        response = upload(http, "docs", *files)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and files[-1][0] in error["message"]
        assert http.get("/v1/knowledge_bases/docs/documents").json()["data"] == []


def test_path_like_filenames_are_sanitised(gateway):
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})
        stored = upload(http, "docs", ("../../etc/notes.txt", b"Harmless notes.")).json()["data"][0]
    assert stored["filename"] == "notes.txt"


def test_bad_metadata_and_an_unknown_knowledge_base(gateway):
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})
        bad = upload(http, "docs", ("a.txt", b"text"), metadata="[1, 2]")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata"
        unknown = upload(http, "nope", ("a.txt", b"text"))
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "knowledge_base_not_found"


def test_chat_with_a_knowledge_base_puts_the_sources_in_the_prompt_and_cites_them(with_docs):
    reply = with_docs.client().chat.completions.create(model="fake-base@docs", messages=QUESTION)
    assert reply.choices[0].message.content.startswith("fake-base says What colour is the Zorblat bridge? Answer the")
    system, question = with_docs.engine.calls[-1][0]  # what the engine was asked
    assert system.role == "system" and "\n\n[1] bridge.md, Bridges" in system.content and FACT in system.content
    assert system.content.startswith("Answer the question from the numbered sources.")
    assert (question.role, question.content) == ("user", "What colour is the Zorblat bridge?")
    citations = reply.model_extra["citations"]
    assert citations[0]["index"] == 1 and citations[0]["filename"] == "bridge.md" and "teal" in citations[0]["snippet"]
    assert {"document_id", "chunk_id", "page", "section", "start", "end", "score"} <= set(citations[0])
    assert reply.model == "fake-base@docs"
    adapter = with_docs.client().chat.completions.create(model="alpha@docs", messages=QUESTION)
    assert adapter.choices[0].message.content.startswith("alpha says") and adapter.model_extra["citations"]
    assert with_docs.engine.calls[-1][2] == "alpha"


def test_streamed_rag_chat_carries_the_citations_on_its_first_chunk_and_the_same_text(with_docs):
    client = with_docs.client()
    whole = client.chat.completions.create(model="fake-base@docs", messages=QUESTION)
    chunks = list(client.chat.completions.create(model="fake-base@docs", messages=QUESTION, stream=True))
    assert chunks[0].model_extra["citations"] == whole.model_extra["citations"]
    assert all("citations" not in chunk.model_extra for chunk in chunks[1:])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content


def test_the_rag_extension_field_and_plain_chats_without_citations(with_docs):
    client = with_docs.client()
    plain = client.chat.completions.create(model="fake-base", messages=QUESTION)
    assert "citations" not in plain.model_extra and plain.choices[0].message.content == (
        "fake-base says What colour is the Zorblat bridge?"
    )
    extended = client.chat.completions.create(
        model="fake-base", messages=QUESTION, extra_body={"rag": {"kb": "docs", "top_k": 1}}
    )
    assert len(extended.model_extra["citations"]) == 1 and FACT in with_docs.engine.calls[-1][0][0].content
    with pytest.raises(openai.BadRequestError) as conflict:
        client.chat.completions.create(model="fake-base@docs", messages=QUESTION, extra_body={"rag": {"kb": "other"}})
    assert conflict.value.param == "rag.kb"
    with pytest.raises(openai.BadRequestError) as legacy:
        client.completions.create(model="fake-base@docs", prompt="What colour is the Zorblat bridge?")
    assert "chat/completions" in legacy.value.message


def test_models_lists_the_base_model_with_each_knowledge_base(with_docs):
    client = with_docs.client()
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"fake-base", "alpha", "beta", "fake-base@docs"}
    assert models["fake-base@docs"].model_extra["parent"] == "fake-base"
    assert client.models.retrieve("alpha@docs").model_extra["parent"] == "alpha"


def test_embeddings_are_openai_compatible_in_float_and_base64(gateway):
    client = gateway.client()
    floats = client.embeddings.create(model="hashing-256", input=["teal bridge", "sourdough"], encoding_format="float")
    packed = client.embeddings.create(model="hashing-256", input=["teal bridge", "sourdough"])  # SDK asks base64
    assert [e.index for e in floats.data] == [0, 1] and len(floats.data[0].embedding) == 256
    assert np.allclose(floats.data[0].embedding, packed.data[0].embedding, atol=1e-6)
    assert np.isclose(np.linalg.norm(floats.data[1].embedding), 1.0)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 3
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with gateway.http() as http:
        raw = http.post("/v1/embeddings", json={"model": "hashing-256", "input": "x", "encoding_format": "base64"})
        vector = np.frombuffer(base64.b64decode(raw.json()["data"][0]["embedding"]), dtype="<f4")
        assert vector.shape == (256,)
        assert http.post("/v1/embeddings", json={"model": "hashing-256", "input": []}).status_code == 400


def test_knowledge_base_writes_need_an_admin_key_and_reads_a_user_key(make_gateway):
    gateway = make_gateway(api_keys=["user"], admin_keys=["admin"])
    with gateway.http("user") as user, gateway.http("admin") as admin, gateway.http() as anonymous:
        refused = user.post("/v1/knowledge_bases", json={"name": "docs"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_permissions"
        assert admin.post("/v1/knowledge_bases", json={"name": "docs"}).status_code == 201
        assert upload(user, "docs", ("a.txt", b"text")).status_code == 403
        assert user.patch("/v1/knowledge_bases/docs", json={"chunk_tokens": 64}).status_code == 403
        assert (
            admin.patch("/v1/knowledge_bases/docs", json={"chunk_tokens": 64}).json()["chunking"]["chunk_tokens"] == 64
        )
        assert upload(admin, "docs", ("a.txt", FACT.encode())).status_code == 201
        assert user.post("/v1/knowledge_bases/docs/search", json={"query": "Zorblat"}).json()["data"]
        assert anonymous.get("/v1/knowledge_bases").status_code == 401
        assert user.delete("/v1/knowledge_bases/docs").status_code == 403
        assert json.loads(admin.delete("/v1/knowledge_bases/docs").text)["deleted"] is True


def words(text: str) -> int:
    """Tokens of the hashing embedder."""
    return len(re.findall(r"\w+", text))


def test_changing_the_embedder_recuts_documents_to_its_input_and_keeps_them_searchable(with_docs):
    with with_docs.http() as http:
        before = http.get("/v1/knowledge_bases/docs").json()
        assert before["chunking"] == {"chunk_tokens": 128, "chunk_overlap": 16} and before["chunks"] == 2
        changed = http.patch("/v1/knowledge_bases/docs", json={"embedder": "hashing-64-12"})
        assert changed.status_code == 200, changed.text
        kb = changed.json()
        assert (kb["object"], kb["embedder"], kb["dimension"], kb["documents"]) == (
            "knowledge_base", "hashing-64-12", 64, 2,
        )  # fmt: skip
        assert kb["chunking"] == {"chunk_tokens": 12, "chunk_overlap": 1} and kb["chunks"] > 2
        assert http.get("/v1/knowledge_bases/docs").json() == kb
        hits = http.post("/v1/knowledge_bases/docs/search", json={"query": "Zorblat bridge teal", "top_k": 10})
        hits = hits.json()["data"]
        assert hits[0]["filename"] == "bridge.md" and all(words(hit["text"]) <= 12 for hit in hits)
        rechunked = http.patch("/v1/knowledge_bases/docs", json={"chunk_tokens": 8, "chunk_overlap": 0}).json()
        assert rechunked["embedder"] == "hashing-64-12" and rechunked["chunking"] == {
            "chunk_tokens": 8,
            "chunk_overlap": 0,
        }
        hits = http.post("/v1/knowledge_bases/docs/search", json={"query": "Zorblat bridge teal", "top_k": 10})
        assert len(hits.json()["data"]) == rechunked["chunks"] and all(
            words(h["text"]) <= 8 for h in hits.json()["data"]
        )
    reply = with_docs.client().chat.completions.create(model="fake-base@docs", messages=QUESTION)
    assert reply.model_extra["citations"][0]["filename"] == "bridge.md"


def test_chunk_sizes_over_the_embedder_input_and_unloadable_embedders_are_400_and_change_nothing(with_docs):
    with with_docs.http() as http:
        before = http.get("/v1/knowledge_bases/docs").json()
        huge = http.post("/v1/knowledge_bases", json={"name": "huge", "chunk_tokens": 100000})
        assert huge.status_code == 400 and huge.json()["error"]["param"] == "chunk_tokens"
        assert "over the 128 tokens that embedder 'hashing-256' reads" in huge.json()["error"]["message"]
        overlap = http.post("/v1/knowledge_bases", json={"name": "huge", "chunk_tokens": 64, "chunk_overlap": 64})
        assert overlap.status_code == 400 and overlap.json()["error"]["param"] == "chunk_overlap"
        assert [kb["id"] for kb in http.get("/v1/knowledge_bases").json()["data"]] == ["docs"]
        too_long = http.patch("/v1/knowledge_bases/docs", json={"embedder": "hashing-64-12", "chunk_tokens": 64})
        assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "chunk_tokens"
        assert "use at most 12" in too_long.json()["error"]["message"]
        unknown = http.patch("/v1/knowledge_bases/docs", json={"embedder": "/no/such/embedder"})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "embedder"
        assert "cannot load embedder '/no/such/embedder'" in unknown.json()["error"]["message"]
        assert http.get("/v1/knowledge_bases/docs").json() == before
        assert http.patch("/v1/knowledge_bases/nope", json={"chunk_tokens": 64}).status_code == 404


@pytest.mark.parametrize("value", [{"$in": ["ops"]}, ["ops", ["hr"]]])
def test_filter_values_that_are_objects_or_nested_lists_are_400_naming_the_key(with_docs, value):
    with with_docs.http() as http:
        response = http.post("/v1/knowledge_bases/docs/search", json={"query": "bridge", "filters": {"team": value}})
        error = response.json()["error"]
        assert response.status_code == 400 and error["param"] == "filters" and "'team'" in error["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        with_docs.client().chat.completions.create(
            model="fake-base@docs", messages=QUESTION, extra_body={"rag": {"filters": {"team": value}}}
        )
    assert refused.value.param == "rag.filters" and "'team'" in refused.value.message


def test_two_files_with_the_same_content_in_one_upload_are_one_document_named_after_the_first(gateway):
    with gateway.http() as http:
        http.post("/v1/knowledge_bases", json={"name": "docs"})
        stored = upload(http, "docs", ("first.txt", FACT.encode()), ("second.txt", FACT.encode())).json()["data"]
        assert [d["filename"] for d in stored] == ["first.txt", "first.txt"] and stored[0] == stored[1]
        listed = http.get("/v1/knowledge_bases/docs/documents").json()["data"]
        assert [(d["id"], d["filename"]) for d in listed] == [(stored[0]["id"], "first.txt")]


def test_a_vector_store_is_a_knowledge_base_on_either_backend(gateway):
    """The vector-store door on both backends (tests/gateway/test_vector_stores.py runs the whole API on both)."""
    client = gateway.client()
    store = client.vector_stores.create(name="handbook")
    data = f"# Bridges\n\n{FACT}\n".encode()
    file = client.files.create(file=("bridge.md", data), purpose="assistants")
    done = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=file.id,
                                                      attributes={"team": "ops"})  # fmt: skip
    assert (done.status, done.usage_bytes) == ("completed", len(data))
    with gateway.http() as http:
        [document] = http.get(f"/v1/knowledge_bases/{store.id}/documents").json()["data"]
        assert document["metadata"] == {"team": "ops", "file_id": file.id}
    ops = {"type": "eq", "key": "team", "value": "ops"}
    hits = client.vector_stores.search(store.id, query="Zorblat bridge", filters=ops).data
    assert [(hit.file_id, hit.attributes) for hit in hits] == [(file.id, {"team": "ops"})]
    assert client.vector_stores.delete(store.id).deleted
    with gateway.http() as http:
        assert http.get("/v1/knowledge_bases").json()["data"] == []
