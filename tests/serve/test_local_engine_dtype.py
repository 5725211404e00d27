"""The LocalEngine's ``dtype``: bfloat16 weights serve mixed batches of LoRA adapters (kept in float32 by PEFT)."""

import asyncio
import json

import torch

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams
from serve.local_engine import LocalEngine


def test_bf16_weights_serve_a_batch_mixing_lora_adapters_and_the_base(tiny_model_dir, random_adapters):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    specs = AdapterRegistry(random_adapters["alpha"].parent, base["id"], base["sha256"]).scan().adapters.values()
    names = [None, *sorted(spec.name for spec in specs)]
    greedy = SamplingParams(max_tokens=8, temperature=0)

    async def go():
        engine = LocalEngine(tiny_model_dir, base["id"], dtype="bfloat16")
        try:
            for spec in specs:
                await engine.load_adapter(spec)
            asks = [engine.generate([Message("user", "Who are you?")], greedy, name) for name in names]
            return await asyncio.gather(*asks), list(engine.batch_sizes), next(engine.base.parameters()).dtype
        finally:
            await engine.close()

    found, sizes, dtype = asyncio.run(go())
    assert dtype == torch.bfloat16
    assert len(sizes) < len(names)  # the base and the adapters shared a batch
    assert all(g.finish_reason in ("stop", "length") for g in found)
    assert len({g.text for g in found}) == len(names)  # each random adapter still changes the answer
