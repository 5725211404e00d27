"""The LocalEngine on CUDA: the CPU's greedy answers, and batches mixing 4 adapters and the base model.

Marked ``gpu``: skipped where torch sees no GPU (tests/conftest.py); bench/gpu_check.sh runs them.
"""

import asyncio
import json

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams

pytestmark = pytest.mark.gpu
DEVICE = "cuda"
PROMPTS = [
    "Who are you?",
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Classify the text: I loved this film.",
]
GREEDY = SamplingParams(max_tokens=10, temperature=0)


@pytest.fixture(scope="module")
def four_adapters(tiny_model_dir, random_adapters, tiny_adapter_dir) -> list:
    """The three random LoRAs and the trained one, as the registry checked them."""
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    specs = []
    for folder in (next(iter(random_adapters.values())).parent, tiny_adapter_dir.parent):
        specs += AdapterRegistry(folder, base["id"], base["sha256"]).scan().adapters.values()
    assert len(specs) == 4
    return specs


def answers(model_dir, device: str, dtype: str, requests: list[tuple[str, str | None]], specs=(), together=True):
    """Each (prompt, adapter) request's Generation from a new LocalEngine, the sizes of the batches it ran, and its
    base model; ``together``: all requests at once, else one after another."""
    from serve.local_engine import LocalEngine

    async def go():
        engine = LocalEngine(model_dir, "tiny", device=device, dtype=dtype)
        try:
            for spec in specs:
                await engine.load_adapter(spec)
            asks = [engine.generate([Message("user", prompt)], GREEDY, adapter) for prompt, adapter in requests]
            found = await asyncio.gather(*asks) if together else [await ask for ask in asks]
            return found, list(engine.batch_sizes), engine.base
        finally:
            await engine.close()

    return asyncio.run(go())


def test_greedy_answers_on_cuda_equal_the_cpus(tiny_model_dir):
    requests = [(prompt, None) for prompt in PROMPTS]
    cpu, _, _ = answers(tiny_model_dir, "cpu", "float32", requests, together=False)
    gpu, _, base = answers(tiny_model_dir, DEVICE, "float32", requests, together=False)
    assert next(base.parameters()).device.type == DEVICE
    assert [(g.text, g.completion_tokens) for g in gpu] == [(g.text, g.completion_tokens) for g in cpu]
    assert sum(g.completion_tokens for g in cpu) > 0


def test_a_batch_mixing_four_adapters_and_the_base_answers_each_as_the_cpu_does_alone(tiny_model_dir, four_adapters):
    requests = [(PROMPTS[0], None)] + [(PROMPTS[0], spec.name) for spec in four_adapters]
    alone, _, _ = answers(tiny_model_dir, "cpu", "float32", requests, four_adapters, together=False)
    mixed, sizes, _ = answers(tiny_model_dir, DEVICE, "float32", requests, four_adapters)
    assert [g.text for g in mixed] == [g.text for g in alone]
    assert len(sizes) < len(requests)  # requests for different adapters shared a batch
    assert len({g.text for g in alone}) >= 4  # the three random adapters each answer otherwise than the base


def test_a_bf16_engine_on_cuda_serves_mixed_batches(tiny_model_dir, four_adapters):
    import torch

    names = [None] + [spec.name for spec in four_adapters]
    requests = [(prompt, names[i % len(names)]) for i, prompt in enumerate(PROMPTS * 3)]
    found, sizes, base = answers(tiny_model_dir, DEVICE, "bfloat16", requests, four_adapters)
    weights = next(base.parameters())
    assert (weights.device.type, weights.dtype) == (DEVICE, torch.bfloat16)
    assert all(g.finish_reason in ("stop", "length") for g in found) and sum(g.completion_tokens for g in found) > 0
    assert max(sizes) > 1
