"""LocalEngine on the tiny model: adapters batched together, streaming, stops, cancellation, unloading."""

import asyncio
import json
from dataclasses import replace

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams, UnknownAdapter
from serve.local_engine import LocalEngine

GREEDY = SamplingParams(max_tokens=12, temperature=0)
ASK = [Message("user", "Who are you?")]


@pytest.fixture
def engine(tiny_model_dir, random_adapters):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    engine = LocalEngine(tiny_model_dir, base["id"])
    registry = AdapterRegistry(next(iter(random_adapters.values())).parent, base["id"], base["sha256"])

    async def load():
        for spec in registry.scan().adapters.values():
            await engine.load_adapter(spec)

    asyncio.run(load())
    yield engine
    asyncio.run(engine.close())


def run(coro):
    return asyncio.run(coro)


def test_each_adapter_answers_differently_from_the_base(engine):
    async def go():
        return [await engine.generate(ASK, GREEDY, a) for a in (None, "alpha", "beta")]

    base, alpha, beta = run(go())
    assert len({base.text, alpha.text, beta.text}) == 3
    assert base.prompt_tokens == alpha.prompt_tokens > 0 and alpha.completion_tokens > 0


def test_a_mixed_batch_gives_every_request_its_own_adapters_output(engine):
    adapters = [None, "alpha", "beta", "gamma", "alpha", None, "gamma", "beta"]

    async def alone():
        return [(await engine.generate(ASK, GREEDY, a)).text for a in adapters]

    async def together():
        results = await asyncio.gather(*(engine.generate(ASK, GREEDY, a) for a in adapters))
        return [r.text for r in results]

    solo = run(alone())
    engine.batch_sizes.clear()
    assert run(together()) == solo
    assert len(engine.batch_sizes) < len(adapters)  # requests for different adapters shared batches


def test_streamed_text_equals_the_generated_text(engine):
    async def go():
        deltas = [d async for d in engine.stream(ASK, GREEDY, "alpha")]
        return deltas, await engine.generate(ASK, GREEDY, "alpha")

    deltas, whole = run(go())
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].finish_reason == whole.finish_reason and len(deltas) > 2


def test_max_tokens_and_stop_sequences(engine):
    async def go():
        long = await engine.generate(ASK, SamplingParams(max_tokens=5, temperature=0))
        free = await engine.generate(ASK, SamplingParams(max_tokens=20, temperature=0))
        stop = free.text[3:5]
        stopped = await engine.generate(ASK, SamplingParams(max_tokens=20, temperature=0, stop=(stop,)))
        return long, free, stop, stopped

    long, free, stop, stopped = run(go())
    assert long.finish_reason == "length" and long.completion_tokens == 5
    assert stopped.finish_reason == "stop" and stopped.text == free.text[: free.text.index(stop)]


def test_sampling_with_a_seed_is_repeatable(engine):
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=7)

    async def go():
        return [(await engine.generate(ASK, params, "beta")).text for _ in range(2)]

    first, second = run(go())
    assert first == second


def test_a_caller_that_goes_away_does_not_disturb_the_others(engine):
    async def go():
        expected = await engine.generate(ASK, GREEDY, "gamma")
        abandoned = engine.stream(ASK, SamplingParams(max_tokens=200, temperature=0), "alpha")
        await abandoned.__anext__()
        other = asyncio.create_task(engine.generate(ASK, GREEDY, "gamma"))
        await abandoned.aclose()
        return expected, await other

    expected, other = run(go())
    assert other.text == expected.text


def test_unloading_refuses_new_requests_and_lets_running_ones_finish(engine):
    async def go():
        running = asyncio.create_task(engine.generate(ASK, SamplingParams(max_tokens=30, temperature=0), "beta"))
        await asyncio.sleep(0.05)
        unloading = asyncio.create_task(engine.unload_adapter("beta"))
        await asyncio.sleep(0)
        assert "beta" not in engine.adapters()
        with pytest.raises(UnknownAdapter):
            await engine.generate(ASK, GREEDY, "beta")
        await unloading
        return await running

    assert run(go()).completion_tokens > 0
    assert engine.adapters() == ["alpha", "gamma"]


def test_hot_swap_under_load(engine, random_adapters):
    """While 8 requests stream, load an adapter, serve it, unload another: nothing fails or mixes up."""
    from serve.adapters import AdapterSpec

    streaming = [None, "alpha", "beta", None, "alpha", "beta", "alpha", None]
    params = SamplingParams(max_tokens=100, temperature=0)

    async def go():
        solo = {a: (await engine.generate(ASK, params, a)).text for a in set(streaming)}
        await engine.unload_adapter("gamma")
        gamma = AdapterSpec("gamma", random_adapters["gamma"], "LORA", 4, ("q_proj",), "v2", {})
        texts = [[] for _ in streaming]

        async def consume(i, adapter):
            async for delta in engine.stream(ASK, params, adapter):
                texts[i].append(delta.text)

        tasks = [asyncio.create_task(consume(i, a)) for i, a in enumerate(streaming)]
        while not all(texts):  # every request is streaming
            await asyncio.sleep(0.005)
        await engine.load_adapter(gamma)  # between two steps of the running batch
        loaded_mid_stream = not any(task.done() for task in tasks)
        unloading = asyncio.create_task(engine.unload_adapter("beta"))  # waits for beta's running streams
        served = await engine.generate(ASK, params, "gamma")
        await unloading
        await asyncio.gather(*tasks)
        return solo, ["".join(t) for t in texts], served, loaded_mid_stream

    solo, texts, served, loaded_mid_stream = run(go())
    assert loaded_mid_stream
    assert texts == [solo[a] for a in streaming]
    assert served.completion_tokens > 0 and served.text not in solo.values()
    assert engine.adapters() == ["alpha", "gamma"]


def test_the_first_lora_waits_for_the_running_batch(tiny_model_dir, random_adapters):
    """The first LoRA turns layers of the model into LoRA layers: running base rows must not see them."""
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    alpha = AdapterRegistry(random_adapters["alpha"].parent, base["id"], base["sha256"]).scan().adapters["alpha"]
    params = SamplingParams(max_tokens=100, temperature=0)

    async def go():
        engine = LocalEngine(tiny_model_dir, base["id"])
        solo = (await engine.generate(ASK, params)).text
        streams = [asyncio.create_task(engine.generate(ASK, params)) for _ in range(4)]
        await asyncio.sleep(0.05)
        await engine.load_adapter(alpha)
        texts = [r.text for r in await asyncio.gather(*streams)]
        served = await engine.generate(ASK, params, "alpha")
        await engine.close()
        return solo, texts, served

    solo, texts, served = run(go())
    assert texts == [solo] * 4 and served.text != solo


def test_the_base_model_serves_again_after_every_adapter_is_unloaded(tiny_model_dir, random_adapters):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    registry = AdapterRegistry(random_adapters["alpha"].parent, base["id"], base["sha256"])

    async def go():
        engine = LocalEngine(tiny_model_dir, base["id"])
        before = await engine.generate(ASK, GREEDY)
        await engine.load_adapter(registry.scan().adapters["alpha"])
        await engine.unload_adapter("alpha")
        after = await engine.generate(ASK, GREEDY)
        await engine.load_adapter(registry.scan().adapters["beta"])  # and adapters load again
        beta = await engine.generate(ASK, GREEDY, "beta")
        await engine.close()
        return before, after, beta

    before, after, beta = run(go())
    assert after.text == before.text and beta.text != before.text


def test_reloading_an_adapter_in_use_swaps_it_without_refusing_anyone(engine, random_adapters):
    """`touch` on a served adapter's weights unloaded it first: unlisted for ~9.5 s, new requests 404."""
    from serve.adapters import AdapterSpec

    params = SamplingParams(max_tokens=40, temperature=0)

    async def go():
        old = (await engine.generate(ASK, params, "alpha")).text
        new = (await engine.generate(ASK, params, "gamma")).text
        running = asyncio.create_task(engine.generate(ASK, params, "alpha"))  # started on the old weights
        while not engine.batch_sizes:
            await asyncio.sleep(0.001)
        reloading = asyncio.create_task(
            engine.load_adapter(AdapterSpec("alpha", random_adapters["gamma"], "LORA", 4, ("q_proj",), "v2", {}))
        )
        listed, answers = [], []
        while not reloading.done():
            listed.append("alpha" in engine.adapters())
            answers.append(asyncio.create_task(engine.generate(ASK, GREEDY, "alpha")))  # never UnknownAdapter
            await asyncio.sleep(0.01)
        await reloading
        after = (await engine.generate(ASK, params, "alpha")).text
        return old, new, (await running).text, after, listed, await asyncio.gather(*answers)

    old, new, running, after, listed, answers = run(go())
    assert old != new and running == old and after == new
    assert all(listed) and all(answer.completion_tokens for answer in answers)
    assert engine.adapters() == ["alpha", "beta", "gamma"]


def test_logit_bias_top_k_min_p_and_repetition_penalty_shape_the_output(engine):
    from serve.engine import InvalidRequest

    token = 300

    async def go():
        greedy = (await engine.generate(ASK, GREEDY)).text
        forced = (await engine.generate(ASK, replace(GREEDY, logit_bias=((token, 100.0),)))).text
        sampled = SamplingParams(max_tokens=12, temperature=1.0, seed=7)
        top_1 = (await engine.generate(ASK, replace(sampled, top_k=1))).text
        min_p_1 = (await engine.generate(ASK, replace(sampled, min_p=1.0))).text
        penalised = (await engine.generate(ASK, replace(GREEDY, repetition_penalty=5.0))).text
        with pytest.raises(InvalidRequest, match="logit_bias: token 999999"):
            await engine.generate(ASK, replace(GREEDY, logit_bias=((999999, 1.0),)))
        return greedy, forced, top_1, min_p_1, penalised

    greedy, forced, top_1, min_p_1, penalised = run(go())
    assert forced == engine.tokenizer.decode([token] * 12, skip_special_tokens=True) != greedy
    assert top_1 == min_p_1 == greedy  # only the likeliest token is left to sample from
    assert penalised != greedy
