"""VllmEngine against fake vLLM replicas: spreading requests, loading adapters on every replica."""

import asyncio
import json
from pathlib import Path

import pytest
import torch

from serve.adapters import AdapterRegistry, AdapterSpec
from serve.engine import EngineError, InvalidRequest, Message, SamplingParams, UnknownAdapter
from serve.vllm_engine import VllmEngine
from tests.fakes.fake_engine import FAKE_SHA256, write_adapter
from tests.fakes.vllm_server import FakeVllm

ASK = [Message("user", "hi")]
PARAMS = SamplingParams(max_tokens=16, temperature=0, stop=("###",), seed=3)


@pytest.fixture
def replicas():
    servers = [FakeVllm(f"replica-{i}", "base").start() for i in range(2)]
    yield servers
    for server in servers:
        server.stop()


def spec(name: str) -> AdapterSpec:
    return AdapterSpec(name, Path(f"/adapters/{name}"), "LORA", 8, ("q_proj",), "v1", {})


def test_requests_are_spread_across_replicas_and_adapters_loaded_on_each(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[r.url for r in replicas]).start()
        await engine.load_adapter(spec("ident"))
        results = await asyncio.gather(*(engine.generate(ASK, PARAMS, "ident") for _ in range(4)))
        base = await engine.generate(ASK, PARAMS)
        await engine.close()
        return results, base

    results, base = asyncio.run(go())
    assert (
        sorted(r.text for r in results) == ["ident answers from replica-0"] * 2 + ["ident answers from replica-1"] * 2
    )
    assert all(r.adapters == {"ident": "/adapters/ident"} for r in replicas)
    assert base.text.startswith("base answers") and base.finish_reason == "stop"
    assert base.prompt_tokens == 7 and base.completion_tokens == 4
    sent = replicas[0].requests[0]
    assert sent["stop"] == ["###"] and sent["seed"] == 3 and sent["temperature"] == 0
    assert sent["stream"] is False and "stream_options" not in sent  # a whole completion is asked for whole


def test_a_stream_asks_for_its_usage_at_the_end(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[replicas[0].url]).start()
        deltas = [d async for d in engine.stream(ASK, PARAMS)]
        await engine.close()
        return deltas

    last = asyncio.run(go())[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == ("stop", 7, 4)
    sent = replicas[0].requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_streaming_yields_pieces_that_add_up_to_the_whole(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[replicas[0].url]).start()
        deltas = [d async for d in engine.stream(ASK, PARAMS)]
        whole = await engine.generate(ASK, PARAMS)
        short = await engine.generate(ASK, SamplingParams(max_tokens=2))
        await engine.close()
        return deltas, whole, short

    deltas, whole, short = asyncio.run(go())
    assert len(deltas) > 2 and "".join(d.text for d in deltas) == whole.text
    assert short.finish_reason == "length"


def test_unloading_removes_the_adapter_from_every_replica(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[r.url for r in replicas]).start()
        await engine.load_adapter(spec("a"))
        await engine.load_adapter(spec("b"))
        await engine.unload_adapter("a")
        assert engine.adapters() == ["b"]
        with pytest.raises(UnknownAdapter):
            await engine.generate(ASK, PARAMS, "a")
        with pytest.raises(UnknownAdapter):
            await engine.unload_adapter("a")
        await engine.close()

    asyncio.run(go())
    assert all(list(r.adapters) == ["b"] for r in replicas)


def test_an_unreachable_replica_is_an_engine_error():
    async def go():
        engine = VllmEngine("unused", "base", urls=["http://127.0.0.1:9"], startup_timeout_s=1)
        with pytest.raises(EngineError, match="not healthy"):
            await engine.start()
        with pytest.raises(EngineError, match="unreachable"):
            await engine.generate(ASK, PARAMS)
        await engine.close()

    asyncio.run(go())


def test_the_server_command_enables_runtime_lora_with_the_registry_limits():
    engine = VllmEngine("/models/gemma", "gemma-3-270m", max_loras=3, max_cpu_loras=9, max_lora_rank=32)
    command = " ".join(engine.command(8123))
    expected = [
        "vllm.entrypoints.openai.api_server", "--model /models/gemma", "--served-model-name gemma-3-270m",
        "--enable-lora", "--max-loras 3", "--max-cpu-loras 9", "--max-lora-rank 32", "--port 8123",
        "--kv-cache-memory-bytes",
    ]  # fmt: skip
    for part in expected:
        assert part in command
    assert engine.info.limits.max_rank == 32


def test_the_cpu_rank_limit_is_what_the_tuner_trains_and_the_vllm_args_raise_it(tmp_path):
    # vLLM's CPU LoRA ops pad every adapter to --max-lora-rank: 64 made r=8 adapters cost 8x what they need
    default = 64 if torch.cuda.is_available() else 32
    assert VllmEngine("/m", "base").info.limits.max_rank == default
    assert f"--max-lora-rank {default}" in " ".join(VllmEngine("/m", "base").command(8123))
    raised = VllmEngine("/m", "base", extra_args=["--max-lora-rank=128"])
    assert raised.info.limits.max_rank == 128
    assert VllmEngine("/m", "base", extra_args=["--max-lora-rank", "16"]).info.limits.max_rank == 16
    assert VllmEngine("/m", "base", urls=["http://127.0.0.1:9"]).info.limits.max_rank == 64
    with pytest.raises(EngineError, match="--max-lora-rank must be a positive whole number, not 'abc'"):
        VllmEngine("/m", "base", extra_args=["--max-lora-rank=abc"])

    write_adapter(tmp_path / "wide", rank=64)
    registry = AdapterRegistry(tmp_path, "fake-base", FAKE_SHA256, VllmEngine("/m", "base").info.limits)
    assert "raise it with `--max-lora-rank N` in LORAG_VLLM_ARGS" in registry.scan().refused["wide"]


def test_a_request_vllm_refuses_is_the_callers_error(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[replicas[0].url]).start()
        with pytest.raises(InvalidRequest, match="max_tokens is too large"):
            await engine.generate(ASK, SamplingParams(max_tokens=10_000))
        await engine.close()

    asyncio.run(go())


def test_an_adapter_one_replica_refuses_is_loaded_on_none(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[r.url for r in replicas]).start()
        replicas[1].refuse_loads = True
        with pytest.raises(EngineError, match="Loading lora failed"):
            await engine.load_adapter(spec("alpha"))
        loaded = [dict(r.adapters) for r in replicas], engine.adapters()
        replicas[1].refuse_loads = False
        await engine.load_adapter(spec("alpha"))  # and a retry loads it everywhere
        await engine.close()
        return loaded

    (first, second), listed = asyncio.run(go())
    assert first == {} and second == {} and listed == []
    assert all("alpha" in r.adapters for r in replicas)


def test_the_server_runs_in_float32_on_cpu_so_it_matches_the_local_engine():
    assert "--dtype float32" in " ".join(VllmEngine("/models/gemma", "gemma-3-270m").command(8123))
    assert "--dtype bfloat16" in " ".join(VllmEngine("/m", "g", dtype="bfloat16").command(8123))


def test_reloading_an_adapter_in_use_swaps_it_on_every_replica_without_refusing_anyone(replicas):
    async def go():
        engine = await VllmEngine("unused", "base", urls=[r.url for r in replicas]).start()
        await engine.load_adapter(spec("a"))
        running = asyncio.create_task(engine.generate(ASK, PARAMS, "a"))
        while not any(r.requests for r in replicas):
            await asyncio.sleep(0.001)
        reloading = asyncio.create_task(engine.load_adapter(spec("a")))
        during = []
        while not reloading.done():
            during.append(await engine.generate(ASK, PARAMS, "a"))  # never UnknownAdapter, never a 404
            assert engine.adapters() == ["a"]
        await reloading
        first = await running
        await engine.close()
        return first, during

    first, during = asyncio.run(go())
    assert first.text.startswith("a answers") and all(answer.finish_reason for answer in during)
    assert all(list(r.adapters) == ["a#1"] for r in replicas)  # the old version unloaded once its request finished


def test_the_sampling_extras_are_sent_to_vllm_only_when_set(replicas):
    from dataclasses import replace

    async def go():
        engine = await VllmEngine("unused", "base", urls=[replicas[0].url]).start()
        await engine.generate(ASK, replace(PARAMS, logit_bias=((5, -1.0),), top_k=2, min_p=0.2, repetition_penalty=1.1))
        await engine.generate(ASK, PARAMS)
        await engine.close()

    asyncio.run(go())
    extras, plain = replicas[0].requests[-2], replicas[0].requests[-1]
    assert extras["logit_bias"] == {"5": -1.0} and (extras["top_k"], extras["min_p"], extras["repetition_penalty"]) == (
        2, 0.2, 1.1,
    )  # fmt: skip
    assert not {"logit_bias", "top_k", "min_p", "repetition_penalty"} & set(plain)


def test_a_json_schema_and_logprobs_reach_vllm_and_the_tokens_come_back(replicas):
    from dataclasses import replace

    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array", "maxItems": 30}}}
    schema["properties"]["c"] = {"type": "array", "items": {"type": "string"}}

    async def go():
        engine = await VllmEngine("unused", "base", urls=[replicas[0].url]).start()
        result = await engine.generate(ASK, replace(PARAMS, json_schema=json.dumps(schema), logprobs=2))
        deltas = [d async for d in engine.stream(ASK, replace(PARAMS, logprobs=2))]
        await engine.close()
        return result, deltas

    result, deltas = asyncio.run(go())
    assert [t for d in deltas for t in d.logprobs] == result.logprobs  # streamed or whole, the same tokens
    sent = replicas[0].requests[-2]
    bounded = {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 8}  # lorag's defaults
    schema["properties"]["c"] = bounded
    assert sent["structured_outputs"] == {"json": schema, "disable_any_whitespace": True}  # the user's maxItems kept
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    assert "".join(t.token for t in result.logprobs) == result.text
    assert result.logprobs[0].top == (("alt0", -1.0), ("alt1", -2.0))


def test_a_restarted_gateway_loads_the_adapters_replicas_still_hold(replicas):
    async def go():
        for _ in range(2):  # the second engine is a gateway restarted against the same running replica
            engine = await VllmEngine("unused", "base", urls=[replicas[0].url]).start()
            await engine.load_adapter(spec("a"))
            answer = await engine.generate(ASK, PARAMS, "a")
            await engine.close()
        return answer

    assert asyncio.run(go()).text.startswith("a answers")
