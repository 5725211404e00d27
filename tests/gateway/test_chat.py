"""Chat and legacy completions through the official openai client, on the fake engine."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from serve.engine import Message, SamplingParams

ASK = [{"role": "user", "content": "Who are you?"}]


def test_chat_completion_on_the_base_model_and_an_adapter(gateway):
    client = gateway.client()
    base = client.chat.completions.create(model="fake-base", messages=ASK)
    alpha = client.chat.completions.create(model="alpha", messages=ASK)
    assert base.choices[0].message.content == "fake-base says Who are you?"
    assert alpha.choices[0].message.content == "alpha says Who are you?"
    assert alpha.object == "chat.completion" and alpha.model == "alpha" and alpha.id.startswith("chatcmpl-")
    assert alpha.choices[0].finish_reason == "stop" and alpha.choices[0].message.role == "assistant"
    assert (alpha.usage.prompt_tokens, alpha.usage.completion_tokens, alpha.usage.total_tokens) == (3, 5, 8)
    assert [adapter for _, _, adapter in gateway.engine.calls] == [None, "alpha"]


def test_request_fields_become_the_engines_sampling_params(gateway):
    gateway.client().chat.completions.create(
        model="beta",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        ],
        temperature=0.5,
        top_p=0.9,
        max_tokens=99,
        max_completion_tokens=7,
        stop="END",
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        user="someone",
    )
    messages, params, adapter = gateway.engine.calls[-1]
    assert adapter == "beta"
    assert messages == [Message("system", "Be brief."), Message("user", "Hi there")]
    assert params == SamplingParams(
        max_tokens=7, temperature=0.5, top_p=0.9, seed=42, stop=("END",), presence_penalty=0.5, frequency_penalty=-0.5
    )


def test_max_tokens_and_stop_set_the_finish_reason(gateway):
    client = gateway.client()
    long = [{"role": "user", "content": "one two three four five six"}]
    cut = client.chat.completions.create(model="alpha", messages=long, max_tokens=3)
    assert cut.choices[0].message.content == "alpha says one" and cut.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(model="alpha", messages=long, stop=["four", "x"])
    assert (
        stopped.choices[0].message.content == "alpha says one two three " and stopped.choices[0].finish_reason == "stop"
    )


def test_streamed_text_equals_the_whole_text(gateway):
    client = gateway.client()
    whole = client.chat.completions.create(model="alpha", messages=ASK, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="alpha", messages=ASK, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5  # word by word
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1]) and len({c.id for c in chunks}) == 1


def test_no_usage_chunk_unless_asked(gateway):
    chunks = list(gateway.client().chat.completions.create(model="fake-base", messages=ASK, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_async_client_streams(gateway):
    async def go():
        client = gateway.async_client()
        stream = await client.chat.completions.create(model="beta", messages=ASK, stream=True, max_tokens=2)
        text = [c.choices[0].delta.content or "" async for c in stream]
        whole = await client.chat.completions.create(model="beta", messages=ASK, max_tokens=2)
        await client.close()
        return "".join(text), whole.choices[0]

    text, whole = asyncio.run(go())
    assert text == whole.message.content == "beta says" and whole.finish_reason == "length"


def test_n_choices_run_n_generations_with_their_own_seeds(gateway):
    client = gateway.client()
    whole = client.chat.completions.create(model="alpha", messages=ASK, n=3, seed=7)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert {c.message.content for c in whole.choices} == {"alpha says Who are you?"}
    assert whole.usage.prompt_tokens == 3 and whole.usage.completion_tokens == 15
    assert [params.seed for _, params, _ in gateway.engine.calls] == [7, 8, 9]
    chunks = list(client.chat.completions.create(model="alpha", messages=ASK, n=2, stream=True))
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert mine[0].delta.role == "assistant" and mine[-1].finish_reason == "stop"
        assert "".join(c.delta.content or "" for c in mine) == "alpha says Who are you?"


def test_legacy_completions_send_each_prompt_as_a_user_turn(gateway):
    client = gateway.client()
    done = client.completions.create(model="alpha", prompt=["Hello", "Good day"], n=2, max_tokens=50)
    assert done.object == "text_completion" and done.id.startswith("cmpl-")
    assert [c.text for c in done.choices] == ["alpha says Hello"] * 2 + ["alpha says Good day"] * 2
    assert [c.index for c in done.choices] == [0, 1, 2, 3]
    assert done.usage.prompt_tokens == 3 and done.usage.completion_tokens == 14
    assert gateway.engine.calls[0][0] == [Message("user", "Hello")] and gateway.engine.calls[0][1].max_tokens == 50
    assert client.completions.create(model="alpha", prompt="a b c").choices[0].finish_reason == "stop"
    assert gateway.engine.calls[-1][1].max_tokens == 16  # OpenAI's default for legacy completions
    chunks = list(
        client.completions.create(model="alpha", prompt="Hello", stream=True, stream_options={"include_usage": True})
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "alpha says Hello"
    assert chunks[-1].usage.completion_tokens == 3


def test_models_lists_the_base_and_every_adapter(gateway):
    client = gateway.client()
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"fake-base", "alpha", "beta"}
    assert models["fake-base"].owned_by == "lorag" and models["fake-base"].parent is None
    assert models["alpha"].parent == "fake-base" and models["alpha"].root == "fake-base"
    assert models["alpha"].created == 1735787045  # lorag.json's "created"
    assert client.models.retrieve("beta").id == "beta"


def test_unknown_fields_are_ignored_and_logged_once(gateway, caplog):
    client = gateway.client()
    with caplog.at_level(logging.WARNING, logger="gateway.api.protocol"):
        for _ in range(2):
            reply = client.chat.completions.create(
                model="alpha", messages=ASK, extra_body={"lorag_test_future_field": {"x": 1}}
            )
            assert reply.choices[0].message.content == "alpha says Who are you?"
    assert [r.getMessage() for r in caplog.records].count(
        "ignoring request field 'lorag_test_future_field' unknown to lorag (logged once)"
    ) == 1


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_client_that_disconnects_mid_stream_cancels_its_generation(gateway):
    gateway.engine.word_delay_s = 0.2
    long = [{"role": "user", "content": " ".join(["word"] * 50)}]
    body = {"model": "alpha", "messages": long, "stream": True}
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # the role chunk
        assert '"content":"alpha"' in next(line for line in lines if line)
    wait_for(lambda: gateway.engine.closed == ["alpha"])


def test_a_client_that_gives_up_waiting_cancels_its_generation(gateway):
    gateway.engine.gate.clear()  # the engine never produces the first word
    try:
        httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "beta", "messages": ASK}, timeout=0.3)
    except httpx.ReadTimeout:
        pass
    wait_for(lambda: gateway.engine.closed == ["beta"])


def test_logit_bias_and_the_vllm_sampling_extras_reach_the_engine(gateway):
    body = {"model": "alpha", "messages": ASK, "logit_bias": {"42": -100, "7": 5.5}, "top_k": 3, "min_p": 0.1,
            "repetition_penalty": 1.2}  # fmt: skip
    with gateway.http() as http:
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        assert http.post("/v1/completions", json={"model": "alpha", "prompt": "Hi", "top_k": -1}).status_code == 200
        refusals = [
            ({"logit_bias": {"x": 1}}, "logit_bias.x.[key]"), ({"logit_bias": {"1": 101}}, "logit_bias.1"),
            ({"min_p": 2}, "min_p"), ({"repetition_penalty": 0}, "repetition_penalty"),
        ]  # fmt: skip
        for bad, param in refusals:
            refused = http.post("/v1/chat/completions", json={"model": "alpha", "messages": ASK} | bad)
            assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
    chat, legacy = gateway.engine.calls[0][1], gateway.engine.calls[1][1]
    assert chat.logit_bias == ((42, -100.0), (7, 5.5)) and (chat.top_k, chat.min_p, chat.repetition_penalty) == (
        3,
        0.1,
        1.2,
    )
    assert legacy.top_k == 0 and legacy.logit_bias == () and legacy.repetition_penalty == 1.0
