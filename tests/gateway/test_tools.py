"""Tools, structured outputs and logprobs through the API: the fake engine, then the tiny model on the LocalEngine."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from gateway.api.app import create_app
from gateway.api.tool_calls import ToolStream, ToolUse, merged
from gateway.api.tool_protocol import NamedToolChoice, Tool
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.gateway.conftest import Served, fake_settings, serving

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def local(tiny_model_dir, tmp_path_factory):
    """The gateway over the tiny model, read with a 2,048-token context: the tools prompt alone exceeds 512."""
    base = PreparedModel.read(tiny_model_dir)
    engine = LocalEngine(tiny_model_dir, base.id)
    engine.context_length = 2048
    folder = tmp_path_factory.mktemp("no-adapters")
    registry = AdapterRegistry(folder, base.id, base.sha256, engine.info.limits)
    with serving(create_app(engine, registry, fake_settings(folder, admin_keys=["admin"]))) as url:
        yield Served(url, engine, folder), base.id
    asyncio.run(engine.close())


def use(choice="auto") -> ToolUse:
    choice = NamedToolChoice.model_validate(choice) if isinstance(choice, dict) else choice
    return ToolUse.of([Tool.model_validate(WEATHER), Tool.model_validate(TIME)], choice)


def streamed(tools: ToolUse, pieces: list[str], reason: str = "stop"):
    stream = ToolStream(tools)
    deltas = [d for p in pieces for d in stream.feed(p)]
    last, finish = stream.finish(reason)
    return deltas + last, finish


def test_auto_reads_every_tool_call_block_and_streams_the_text_before_it():
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n'
    text += '</tool_call>\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    deltas, finish = streamed(use(), pieces)
    content, calls = merged(deltas)
    assert finish == "tool_calls" and content == "Let me check.\n"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris", "unit": "C"}),
        ("get_time", {}),
    ]
    assert "".join(d.content or "" for d in deltas[:3]) == "Let me check.\n"[: len("".join(pieces[:3]))]
    assert len({c.id for c in calls}) == 2


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny in Paris.",
        '<tool_call>{"name": "get_news", "arguments": {}}</tool_call>',  # not among the tools
        '<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>',
        "<tool_call>not json</tool_call>",
        "a < b and <tool_ is not a tag",
    ],
)
def test_auto_without_a_valid_call_is_plain_content_streamed_or_not(text):
    deltas, finish = streamed(use(), list(text))
    assert merged(deltas) == (text, None) and finish == "stop"


def test_a_named_call_streams_its_arguments_and_required_reads_one_call():
    deltas, finish = streamed(use({"type": "function", "function": {"name": "get_time"}}), ["{", "}"])
    assert finish == "tool_calls" and deltas[0].tool_calls[0].function.name == "get_time"
    assert [d.tool_calls[0].function.arguments for d in deltas] == ["", "{", "}"]
    call = '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "F"}}'
    content, calls = merged(streamed(use("required"), [call])[0])
    assert content is None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo", "unit": "F"}
    deltas, finish = streamed(use("required"), [call[:20]], "length")  # cut short: the text, as content
    assert merged(deltas) == (call[:20], None) and finish == "length"


def test_tools_and_tool_messages_reach_the_engine_as_text(gateway):
    history = ASK + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
    ]
    reply = gateway.client().chat.completions.create(model="fake-base", messages=history, tools=[WEATHER])
    messages, params, _ = gateway.engine.calls[-1]
    assert messages[0].role == "system" and '"name": "get_weather"' in messages[0].content
    assert messages[2].content == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert messages[3].role == "user" and "<tool_response>\n18 C and sunny\n</tool_response>" == messages[3].content
    assert params.json_schema is None and reply.choices[0].message.tool_calls is None  # auto: the fake never calls
    gateway.client().chat.completions.create(model="fake-base", messages=ASK, tools=[WEATHER], tool_choice="none")
    assert gateway.engine.calls[-1][0][0].role == "user"  # tool_choice none: no tools in the prompt


def test_a_forced_call_always_parses_and_matches_its_schema_on_the_tiny_model(local):
    served, base = local
    client = served.client()
    named = {"type": "function", "function": {"name": "get_weather"}}
    for seed in range(4):
        reply = client.chat.completions.create(
            model=base, messages=ASK, tools=[WEATHER, TIME], tool_choice=named, temperature=1, seed=seed,
            max_tokens=120,
        )  # fmt: skip
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls
        assert call.function.name == "get_weather" and call.id.startswith("call")
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    options = {"model": base, "messages": ASK, "tools": [WEATHER, TIME], "tool_choice": "required", "temperature": 0}
    whole = client.chat.completions.create(**options, max_tokens=120).choices[0].message.tool_calls[0]
    chunks = list(client.chat.completions.create(**options, max_tokens=120, stream=True))
    pieces = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert pieces[0].function.name == whole.function.name
    assert "".join(p.function.arguments for p in pieces) == whole.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_json_schema_through_the_sdk_with_n_and_adapters(local, random_adapters):
    served, base = local
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer", "maximum": 130}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    with served.http("admin") as http:
        assert http.post("/v1/adapters", json={"name": "alpha", "path": str(random_adapters["alpha"])}).is_success
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    for model in (base, "alpha"):
        reply = served.client().chat.completions.create(
            model=model, messages=ASK, response_format=response_format, n=3, temperature=1, max_tokens=80,
            logprobs=True, top_logprobs=2,
        )  # fmt: skip
        for choice in reply.choices:
            jsonschema.validate(json.loads(choice.message.content), schema)
            assert choice.message.content.startswith('{"name": ')  # the schema's order, not alphabetical
            tokens = choice.logprobs.content
            if "\ufffd" not in choice.message.content + "".join(t.token for t in tokens):  # no split characters
                assert "".join(t.token for t in tokens) == choice.message.content
            assert all(len(t.top_logprobs) == 2 and bytes(t.bytes).decode() == t.token for t in tokens)
        assert reply.usage.completion_tokens == sum(len(c.logprobs.content) for c in reply.choices)
    with served.http() as http:
        bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}}
        response = http.post("/v1/chat/completions", json={"model": base, "messages": ASK, "response_format": bad})
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and message.startswith("the JSON schema cannot be compiled: Cannot find")


def test_legacy_completion_logprobs_streamed_equal_whole(local):
    served, base = local
    options = {"model": base, "prompt": "Who are you?", "max_tokens": 8, "temperature": 0, "logprobs": 3}
    whole = served.client().completions.create(**options).choices[0]
    chunks = [c.choices[0] for c in served.client().completions.create(**options, stream=True) if c.choices]
    tokens = [t for c in chunks if c.logprobs for t in c.logprobs.tokens]
    offsets = [o for c in chunks if c.logprobs for o in c.logprobs.text_offset]
    assert tokens == whole.logprobs.tokens and offsets == whole.logprobs.text_offset
    assert len(whole.logprobs.top_logprobs[0]) == 3 and whole.logprobs.text_offset[0] == 0
