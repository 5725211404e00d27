"""A merged export (``tuner.export.merge``) loaded on CUDA computes what the base model plus its adapter does.

Marked ``gpu``: skipped where torch sees no GPU.
"""

import asyncio
import json

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams

pytestmark = pytest.mark.gpu
DEVICE = "cuda"
ASK = [Message("user", "Who are you?")]


def greedy(model_dir, adapter=None) -> str:
    """The LocalEngine's greedy answer on the device, fp32, with ``adapter`` (a spec) loaded and asked for."""
    from serve.local_engine import LocalEngine

    async def go():
        engine = LocalEngine(model_dir, "m", device=DEVICE)
        try:
            if adapter:
                await engine.load_adapter(adapter)
            params = SamplingParams(max_tokens=10, temperature=0)
            return (await engine.generate(ASK, params, adapter.name if adapter else None)).text
        finally:
            await engine.close()

    return asyncio.run(go())


def test_a_merged_export_on_cuda_matches_the_adapter_it_came_from(tiny_model_dir, random_adapters, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuner.export import merge

    merged_dir = merge(random_adapters["alpha"], tiny_model_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).to(DEVICE).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(random_adapters["alpha"])).to(DEVICE).eval()
    ids = AutoTokenizer.from_pretrained(merged_dir)("Who are you?", return_tensors="pt").input_ids.to(DEVICE)
    with torch.no_grad():
        assert merged(ids).logits.device.type == DEVICE
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)

    manifest = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    registry = AdapterRegistry(random_adapters["alpha"].parent, manifest["id"], manifest["sha256"])
    alpha = registry.scan().adapters["alpha"]
    assert greedy(merged_dir) == greedy(tiny_model_dir, alpha) != greedy(tiny_model_dir)
