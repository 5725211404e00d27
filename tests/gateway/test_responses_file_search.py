"""The Responses API's file_search tool on knowledge bases (a vector store id is a knowledge base's name)."""

from __future__ import annotations

import json

import openai
import pytest

BRIDGE = "The Harbour bridge is painted teal every spring."
TOWER = "The clock tower rings twelve times at noon."
KEYS = """
keys:
  - name: team-a
    key: key-of-team-a
    knowledge_bases: [kb-a]
  - name: team-b
    key: key-of-team-b
  - name: ops
    key: key-of-ops
    admin: true
"""


def make_kb(http, name: str, files: dict[str, str], metadata: dict[str, str] | None = None) -> None:
    assert http.post("/v1/knowledge_bases", json={"name": name}).status_code == 201
    for filename, text in files.items():
        data = {"metadata": json.dumps(metadata[filename])} if metadata and filename in metadata else {}
        uploaded = http.post(f"/v1/knowledge_bases/{name}/documents", files={"files": (filename, text.encode())},
                             data=data)  # fmt: skip
        assert uploaded.status_code == 201, uploaded.text


@pytest.fixture
def served(gateway):
    with gateway.http() as http:
        make_kb(
            http,
            "docs",
            {"bridge.txt": BRIDGE, "tower.txt": TOWER},
            {"bridge.txt": {"file_id": "file-bridge", "team": "roads"}, "tower.txt": {"team": "clocks"}},
        )
        make_kb(http, "more", {"ferry.txt": "The ferry to the island leaves at dawn."})
    return gateway


def search_tool(**options) -> dict:
    return {"type": "file_search", "vector_store_ids": ["docs"], **options}


def test_file_search_outputs_its_call_then_a_message_citing_the_files(served):
    reply = served.client().responses.create(
        model="alpha", input="What colour is the Harbour bridge?", tools=[search_tool(max_num_results=2)]
    )
    call, message = reply.output
    assert call.type == "file_search_call" and call.status == "completed" and call.id.startswith("fs_")
    assert call.queries == ["What colour is the Harbour bridge?"] and call.results is None  # not included
    system = served.engine.calls[-1][0][0]
    assert system.role == "system" and "[1] bridge.txt" in system.content and BRIDGE in system.content
    annotations = message.content[0].annotations
    assert [(a.type, a.filename) for a in annotations] == [("file_citation", "bridge.txt"), ("file_citation",
                                                                                            "tower.txt")]  # fmt: skip
    assert annotations[0].file_id == "file-bridge"  # the vector-store door's file id, from the metadata
    with served.http() as http:
        documents = {d["filename"]: d["id"] for d in http.get("/v1/knowledge_bases/docs/documents").json()["data"]}
    assert annotations[1].file_id == documents["tower.txt"]  # else the document id
    assert all(0 <= a.index <= len(reply.output_text) for a in annotations)


def test_results_come_with_include_and_the_response_keeps_them(served):
    client = served.client()
    reply = client.responses.create(
        model="alpha", input="What colour is the Harbour bridge?", tools=[search_tool()],
        include=["file_search_call.results"],
    )  # fmt: skip
    results = reply.output[0].results
    assert results[0].filename == "bridge.txt" and results[0].text.strip() == BRIDGE
    assert results[0].file_id == "file-bridge" and results[0].attributes == {"team": "roads"}
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert client.responses.retrieve(reply.id).output[0].results is None
    kept = client.responses.retrieve(reply.id, include=["file_search_call.results"]).output[0].results
    assert [r.model_dump() for r in kept] == [r.model_dump() for r in results]


def test_stores_are_merged_by_score_and_bounded_by_max_num_results(served):
    client = served.client()
    tool = search_tool(vector_store_ids=["docs", "more"], max_num_results=4)
    both = client.responses.create(model="alpha", input="When does the ferry leave?", tools=[tool],
                                   include=["file_search_call.results"]).output[0].results  # fmt: skip
    assert {r.filename for r in both} == {"bridge.txt", "tower.txt", "ferry.txt"} and both[0].filename == "ferry.txt"
    tool["max_num_results"] = 1
    one = client.responses.create(model="alpha", input="When does the ferry leave?", tools=[tool],
                                  include=["file_search_call.results"]).output[0].results  # fmt: skip
    assert [r.filename for r in one] == ["ferry.txt"]


def test_file_search_streams_its_events_before_the_message(served):
    events = list(served.client().responses.create(
        model="alpha", input="What colour is the bridge?", tools=[search_tool()], stream=True
    ))  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[:7] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.file_search_call.in_progress", "response.file_search_call.searching",
        "response.file_search_call.completed", "response.output_item.done",
    ]  # fmt: skip
    assert kinds[7] == "response.output_item.added" and events[7].item.type == "message" and events[7].output_index == 1
    assert kinds.count("response.output_text.annotation.added") == 2 and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output[0].type == "file_search_call" and len(final.output[1].content[0].annotations) == 2
    assert events[6].item.results is None and final.output[0].results is None  # not included
    included = list(served.client().responses.create(
        model="alpha", input="What colour is the bridge?", tools=[search_tool()], stream=True,
        include=["file_search_call.results"],
    ))  # fmt: skip
    assert included[6].item.results[0].filename == "bridge.txt"
    assert included[-1].response.output[0].results == included[6].item.results


def test_an_unknown_store_is_404_before_any_work(served):
    with pytest.raises(openai.NotFoundError) as missing:
        served.client().responses.create(model="alpha", input="Hi", tools=[search_tool(vector_store_ids=["nope"])])
    assert "nope" in missing.value.message and served.engine.calls == []


def test_a_model_at_a_knowledge_base_cites_its_sources_without_a_search_item(served):
    reply = served.client().responses.create(model="alpha@docs", input="What colour is the bridge?")
    (message,) = reply.output
    assert {a.filename for a in message.content[0].annotations} == {"bridge.txt", "tower.txt"}
    assert BRIDGE in served.engine.calls[-1][0][0].content


def test_openai_filter_objects_pass_through_to_retrieval(served):
    # Needs rag's filter grammar to read OpenAI's comparison/compound objects (the vector-store work in rag/query.py).
    tool = search_tool(filters={"type": "eq", "key": "team", "value": "clocks"})
    reply = served.client().responses.create(model="alpha", input="What colour is the bridge?", tools=[tool],
                                             include=["file_search_call.results"])  # fmt: skip
    assert [r.filename for r in reply.output[0].results] == ["tower.txt"]
    with served.http() as http:
        body = {"model": "alpha", "input": "Hi", "tools": [search_tool(filters={"type": "eq", "key": "a b"})]}
        bad = http.post("/v1/responses", json=body)
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("tools[0]")


@pytest.fixture
def scoped(make_gateway, tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    served = make_gateway(keys_file=path)
    with served.http("key-of-ops") as http:
        make_kb(http, "kb-a", {"a.txt": "The secret of kb-a is teal."})
        make_kb(http, "kb-b", {"b.txt": "The secret of kb-b is red."})
    return served


def test_a_key_scoped_to_another_knowledge_base_gets_404_for_the_store(scoped):
    client = scoped.client("key-of-team-a")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="fake-base", input="Secret?", tools=[search_tool(vector_store_ids=["kb-b"])])
    reply = client.responses.create(model="fake-base", input="Secret?", tools=[search_tool(vector_store_ids=["kb-a"])])
    assert reply.output[1].content[0].annotations[0].filename == "a.txt"


def test_another_keys_vector_store_is_404_for_file_search(scoped):
    owned = scoped.client("key-of-team-a").vector_stores.create(name="mine")
    with pytest.raises(openai.NotFoundError):  # team-b may use every knowledge base, but not team-a's store
        scoped.client("key-of-team-b").responses.create(
            model="fake-base", input="Secret?", tools=[search_tool(vector_store_ids=[owned.id])]
        )
    reply = scoped.client("key-of-team-a").responses.create(
        model="fake-base", input="Secret?", tools=[search_tool(vector_store_ids=[owned.id])]
    )
    assert reply.output[0].type == "file_search_call" and reply.output[0].status == "completed"


def test_a_response_belongs_to_the_key_that_made_it(scoped):
    mine = scoped.client("key-of-team-a").responses.create(model="fake-base", input="Hello")
    other = scoped.client("key-of-team-b")
    for attempt in (
        lambda: other.responses.retrieve(mine.id),
        lambda: other.responses.delete(mine.id),
        lambda: other.responses.input_items.list(mine.id),
        lambda: other.responses.create(model="fake-base", input="Hi", previous_response_id=mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert scoped.client("key-of-ops").responses.retrieve(mine.id).id == mine.id  # admins see all
    scoped.client("key-of-team-a").responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        scoped.client("key-of-ops").responses.retrieve(mine.id)


def test_the_score_threshold_is_retrievals_min_score(served):
    client = served.client()
    ask = {"model": "alpha", "input": "What colour is the Harbour bridge?", "include": ["file_search_call.results"]}
    every = client.responses.create(**ask, tools=[search_tool()]).output[0].results
    kept = client.responses.create(**ask, tools=[search_tool(ranking_options={"score_threshold": 0.99})])
    assert len(every) == 2 and min(r.score for r in every) < 0.99
    assert [r.filename for r in kept.output[0].results] == ["bridge.txt"] and kept.output[0].results[0].score >= 0.99
