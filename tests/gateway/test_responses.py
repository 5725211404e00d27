"""The Responses API through the official openai client, on the fake engine: input, streaming, tools, state."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from pydantic import BaseModel, Field

from gateway.api.app import create_app
from gateway.api.auth import Principal
from gateway.api.tool_protocol import ResponseFormat
from gateway.responses.objects import Response
from gateway.responses.store import ResponseStore
from serve.adapters import AdapterRegistry
from serve.engine import Delta, EngineError, Message, check_context
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.fakes.fake_engine import FakeEngine
from tests.gateway.conftest import Served, fake_settings, serving

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
EVENTS_OF_TEXT = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
]  # fmt: skip


def test_a_string_input_is_one_user_turn_and_the_response_is_openais(gateway):
    reply = gateway.client().responses.create(model="alpha", input="Who are you?")
    assert reply.output_text == "alpha says Who are you?"
    assert reply.object == "response" and reply.id.startswith("resp_") and reply.status == "completed"
    assert reply.model == "alpha" and reply.incomplete_details is None and reply.error is None
    (message,) = reply.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    usage = reply.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (3, 5, 8)
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    assert gateway.engine.calls == [([Message("user", "Who are you?")], gateway.engine.calls[0][1], "alpha")]


def test_items_instructions_and_sampling_fields_reach_the_engine(gateway):
    reply = gateway.client().responses.create(
        model="beta",
        instructions="Answer in French.",
        input=[
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "Hi "}, {"type": "input_text", "text": "there"}]},
        ],
        temperature=0.5, top_p=0.9, max_output_tokens=7, user="someone", metadata={"team": "a"},
    )  # fmt: skip
    messages, params, adapter = gateway.engine.calls[-1]
    assert adapter == "beta"
    assert messages == [Message("system", "Answer in French."), Message("system", "Be brief."),
                        Message("user", "Hi there")]  # fmt: skip
    assert (params.temperature, params.top_p, params.max_tokens) == (0.5, 0.9, 7)
    assert reply.instructions == "Answer in French." and reply.metadata == {"team": "a"} and reply.user == "someone"
    assert (reply.temperature, reply.top_p, reply.max_output_tokens) == (0.5, 0.9, 7)


def test_streamed_events_come_in_openais_order_and_their_text_is_the_whole_text(gateway):
    client = gateway.client()
    whole = client.responses.create(model="alpha", input="Who are you?")
    events = list(client.responses.create(model="alpha", input="Who are you?", stream=True))
    assert [e.type for e in events] == EVENTS_OF_TEXT
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == whole.output_text == events[-1].response.output_text
    message_id = events[2].item.id
    assert {e.item_id for e in events[3:-2]} == {message_id} and events[2].item.status == "in_progress"
    assert events[0].response.status == "in_progress" and events[-1].response.status == "completed"
    assert events[-1].response.usage.total_tokens == whole.usage.total_tokens


def test_the_sdks_stream_helper(gateway):
    client = gateway.client()
    with client.responses.stream(model="alpha", input="Who are you?") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "alpha says Who are you?"


def test_text_format_becomes_the_chat_pipelines_response_format(gateway):
    client = gateway.client()
    client.responses.create(model="alpha", input="Hi", text={"format": {"type": "json_object"}})
    assert json.loads(gateway.engine.calls[-1][1].json_schema) == {"type": "object"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "name": "count", "schema": schema, "strict": True}
    reply = client.responses.create(model="alpha", input="Hi", text={"format": fmt})
    messages, params, _ = gateway.engine.calls[-1]
    chats = ResponseFormat.model_validate({"type": "json_schema", "json_schema": {"name": "count", "schema": schema}})
    assert json.loads(params.json_schema) == schema and messages[0].content == chats.instruction()  # as chat's
    assert reply.text.format.type == "json_schema" and reply.text.format.name == "count"


def weather_reply(messages, params, adapter):
    """A scripted model: it calls get_weather for a question, and reads the tool's answer back."""
    last = messages[-1].content
    if last.startswith("<tool_response>"):
        return "It is " + last.split("\n")[1]
    return '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def test_function_tools_round_trip_through_previous_response_id(make_gateway):
    served = make_gateway(FakeEngine(reply=weather_reply))
    client = served.client()
    first = client.responses.create(model="fake-base", input="Weather in Paris?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    assert '"name": "get_weather"' in served.engine.calls[-1][0][0].content  # the tools in the system turn
    second = client.responses.create(
        model="fake-base", previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )  # fmt: skip
    assert second.output_text == "It is sunny" and second.previous_response_id == first.id
    messages = served.engine.calls[-1][0]
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1].content == "Weather in Paris?" and '"city": "Paris"' in messages[2].content
    assert messages[3].content == "<tool_response>\nsunny\n</tool_response>"


def test_the_output_passed_back_as_input_and_parallel_tool_calls(make_gateway):
    two_calls = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' * 2
    served = make_gateway(FakeEngine(reply=lambda m, p, a: two_calls if m[-1].role == "user" else "?"))
    client = served.client()
    ask = {"model": "fake-base", "input": "Weather in Paris and Rome?", "tools": [WEATHER]}
    both = client.responses.create(**ask)
    assert [item.type for item in both.output] == ["function_call", "function_call"]
    assert len({item.call_id for item in both.output}) == 2
    one = client.responses.create(**ask, parallel_tool_calls=False)
    assert [item.type for item in one.output] == ["function_call"] and one.parallel_tool_calls is False
    results = [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in both.output]
    question = {"role": "user", "content": ask["input"]}
    client.responses.create(model="fake-base", tools=[WEATHER], input=[question, *both.output, *results])
    messages = served.engine.calls[-1][0]
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "user"]
    assert messages[2].content.count("<tool_call>") == 2 and messages[4].content.startswith("<tool_response>")


def test_a_named_function_streams_its_arguments(make_gateway):
    served = make_gateway(FakeEngine(reply=lambda m, p, a: '{"city": "Rome"}'))
    events = list(served.client().responses.create(
        model="fake-base", input="Weather?", tools=[WEATHER], stream=True,
        tool_choice={"type": "function", "name": "get_weather"},
    ))  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == {"city": "Rome"} == json.loads(events[-1].response.output[0].arguments)
    assert json.loads(served.engine.calls[-1][1].json_schema) == WEATHER["parameters"]


def test_previous_response_id_carries_the_conversation_and_stored_responses_can_be_read(gateway):
    client = gateway.client()
    first = client.responses.create(model="alpha", input="My name is Ada.", instructions="Be kind.")
    second = client.responses.create(model="alpha", input="What is my name?", previous_response_id=first.id)
    assert gateway.engine.calls[-1][0] == [
        Message("user", "My name is Ada."),
        Message("assistant", "alpha says My name is Ada. Be kind."),
        Message("user", "What is my name?"),
    ]  # the instructions are not carried over, as OpenAI does
    assert client.responses.retrieve(second.id).model_dump() == second.model_dump()
    items = client.responses.input_items.list(second.id)
    assert [i.content[0].text for i in items.data] == ["What is my name?"] and items.has_more is False
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="alpha", input="Again?", previous_response_id=first.id)
    third = client.responses.create(model="alpha", input="Still there?", previous_response_id=second.id)
    assert len(gateway.engine.calls[-1][0]) == 5 and third.status == "completed"  # second's context was kept


def test_input_items_page_in_openais_list_shape(gateway):
    client = gateway.client()
    texts = [f"item {i}" for i in range(5)]
    reply = client.responses.create(model="alpha", input=[{"role": "user", "content": t} for t in texts])
    newest = client.responses.input_items.list(reply.id, limit=2)
    assert [i.content[0].text for i in newest.data] == ["item 4", "item 3"] and newest.has_more
    assert newest.first_id == newest.data[0].id and newest.last_id == newest.data[1].id
    rest = client.responses.input_items.list(reply.id, limit=10, after=newest.last_id)
    assert [i.content[0].text for i in rest.data] == ["item 2", "item 1", "item 0"] and not rest.has_more
    oldest = client.responses.input_items.list(reply.id, order="asc", limit=1)
    assert oldest.data[0].content[0].text == "item 0" and oldest.data[0].role == "user"
    assert [i.id for i in client.responses.input_items.list(reply.id, order="asc")] == [
        i.id for i in reversed(newest.data + rest.data)
    ]  # the SDK pages through with after


def test_store_false_is_not_kept(gateway):
    client = gateway.client()
    reply = client.responses.create(model="alpha", input="Hi", store=False)
    assert reply.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="alpha", input="Hi", previous_response_id=reply.id)


def test_the_length_limit_makes_an_incomplete_response(gateway):
    client = gateway.client()
    ask = {"model": "alpha", "input": "one two three four", "max_output_tokens": 3}
    cut = client.responses.create(**ask)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "alpha says one" and cut.output[0].status == "incomplete"
    events = list(client.responses.create(**ask, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.output_text == cut.output_text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("background", True), ("reasoning", {"effort": "low"}), ("conversation", "conv_1"),
        ("prompt", {"id": "pmpt_1"}), ("tools", [{"type": "web_search"}]),
        ("tools", [{"type": "code_interpreter", "container": {"type": "auto"}}]),
        ("input", [{"type": "reasoning", "summary": []}]), ("text", {"format": {"type": "json_schema"}}),
        ("tool_choice", {"type": "function", "name": "nowhere"}), ("include", ["message.output_text.logprobs"]),
    ],
)  # fmt: skip
def test_what_lorag_cannot_honour_is_refused_by_name_before_any_work(gateway, field, value):
    body = {"model": "alpha", "input": "Hi", field: value}
    with gateway.http() as http:
        refused = http.post("/v1/responses", json=body)
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["param"].startswith(field) and field in error["message"]
    assert gateway.engine.calls == []


def test_unknown_fields_are_ignored(gateway):
    with gateway.http() as http:
        reply = http.post("/v1/responses", json={"model": "alpha", "input": "Hi", "something_new": 1})
    assert reply.status_code == 200 and reply.json()["output"][0]["content"][0]["text"] == "alpha says Hi"


class ShortContextEngine(FakeEngine):
    """The fake engine with a context of ``context`` words, refused as the real engines refuse."""

    def __init__(self, context: int):
        super().__init__()
        self.context = context

    async def stream(self, messages, params, adapter=None):
        self.calls.append((messages, params, adapter))
        check_context(sum(len(m.content.split()) for m in messages), params.max_tokens, self.context)
        async for delta in FakeEngine(self.info.base_model).stream(messages, params, adapter):
            yield delta


def test_truncation_disabled_refuses_a_long_conversation_and_auto_drops_the_oldest_turns(make_gateway):
    served = make_gateway(ShortContextEngine(context=35))
    client = served.client()
    turn = "one two three four five six"
    first = client.responses.create(model="fake-base", input=turn, max_output_tokens=10)
    second = client.responses.create(model="fake-base", input=turn, max_output_tokens=10, previous_response_id=first.id)
    ask = {"model": "fake-base", "input": "last question", "max_output_tokens": 10, "previous_response_id": second.id}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(**ask)
    assert refused.value.code == "context_length_exceeded" and refused.value.param == "input"
    fitted = client.responses.create(**ask, truncation="auto")
    assert fitted.status == "completed" and fitted.truncation == "auto"
    messages = served.engine.calls[-1][0]
    assert messages[0].content == turn and messages[-1].content == "last question" and len(messages) == 3


class Person(BaseModel):
    name: str = Field(max_length=10)
    age: int = Field(ge=0, le=130)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tmp_path_factory):
    """The gateway over the tiny random model on the LocalEngine (constrained decoding), 2,048 tokens of context."""
    base = PreparedModel.read(tiny_model_dir)
    engine = LocalEngine(tiny_model_dir, base.id)
    engine.context_length = 2048
    folder = tmp_path_factory.mktemp("responses-tiny")
    registry = AdapterRegistry(folder, base.id, base.sha256, engine.info.limits)
    with serving(create_app(engine, registry, fake_settings(folder))) as url:
        yield Served(url, engine, folder), base.id
    asyncio.run(engine.close())


def test_parse_with_a_pydantic_model_and_stream_it_the_same_on_the_tiny_model(tiny):
    served, base = tiny
    client = served.client()
    ask = {"model": base, "input": "Who are you?", "text_format": Person, "temperature": 0, "max_output_tokens": 60}
    parsed = client.responses.parse(**ask)
    assert isinstance(parsed.output_parsed, Person) and parsed.status == "completed"
    with client.responses.stream(**ask) as stream:
        final = stream.get_final_response()
    assert final.output_text == parsed.output_text and final.output_parsed == parsed.output_parsed


def test_stored_responses_older_than_the_retention_are_deleted(tmp_path):
    path, retention_days = tmp_path / "responses.sqlite", 0.3 / 86400  # 0.3 s
    response = Response(
        id="resp_1", created_at=0, status="completed", model="m", parallel_tool_calls=True, store=True,
        temperature=1, text={}, tool_choice="auto", tools=[], top_p=1, truncation="disabled",
    )  # fmt: skip
    owner = Principal("team-a", admin=False)
    store = ResponseStore(path, retention_days)
    store.save(response, owner.name, [], [])
    assert store.get("resp_1", owner).response == response and store.get("resp_1", Principal("b", False)) is None
    store.close()
    time.sleep(0.4)
    assert ResponseStore(path, retention_days).get("resp_1", owner) is None  # pruned when the store opens


class FailingMidway(FakeEngine):
    """The fake engine that says one word, then crashes."""

    async def stream(self, messages, params, adapter=None):
        self.calls.append((messages, params, adapter))
        yield Delta("Hello")
        raise EngineError("the engine crashed")


def test_an_engine_failure_mid_stream_ends_with_an_error_event_and_nothing_is_stored(make_gateway):
    client = make_gateway(FailingMidway()).client()
    events = list(client.responses.create(model="fake-base", input="Hi", stream=True))
    assert [e.type for e in events[-2:]] == ["response.output_text.delta", "error"]
    assert events[-1].code == "engine_unavailable" and events[-1].sequence_number == len(events) - 1
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[0].response.id)


def test_metrics_and_body_checks_are_chats(gateway):
    gateway.client().responses.create(model="alpha", input="Hi")
    with gateway.http() as http:
        metrics = http.get("/metrics").text
        body = b'{"model": "alpha", "input": [{"role": "user", "content": "a\\ud800"}]}'
        lone = http.post("/v1/responses", content=body, headers={"content-type": "application/json"})
    assert 'lorag_requests_total{endpoint="responses",model="alpha",outcome="ok"} 1.0' in metrics
    assert 'lorag_completion_tokens_total{model="alpha"} 3.0' in metrics
    assert lone.status_code == 400 and lone.json()["error"]["param"] == "input[0].content"
