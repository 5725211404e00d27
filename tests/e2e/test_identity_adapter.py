"""`make finetune`'s demo on the embedded default model: the adapter knows who it is, the base does not.

The adapter is trained by the real command line (`lorag finetune` on the shipped recipe), checked
by the adapter registry against the prepared base model, and served by the LocalEngine; every
held-out phrasing is asked of the adapter and of the base model with greedy decoding.
"""

import asyncio
import json
from pathlib import Path

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams
from serve.local_engine import LocalEngine

ROOT = Path(__file__).parents[2]
HELD_OUT = [json.loads(line)["messages"][0]["content"] for line in open(ROOT / "tuner/data/lorag-identity/eval.jsonl")]

pytestmark = pytest.mark.slow


def test_adapter_answers_held_out_questions_with_its_identity_and_the_base_does_not(
    identity_adapter, embedded_model_dir
):
    manifest = json.loads((identity_adapter / "lorag.json").read_text())
    assert manifest["metrics"]["eval_loss"] < 1.0
    taught, kept = manifest["behaviour"]["taught"], manifest["behaviour"]["kept"]
    assert taught["rate"] >= 10 / 12 and kept["marker_rate"] <= 1 / 12, manifest["behaviour"]  # learned, kept
    assert (
        manifest["dataset"]["replay"]["rows"]
        == 120
        == len((identity_adapter / "replay.jsonl").read_text().splitlines())
    )
    base = json.loads((embedded_model_dir / "lorag-model.json").read_text())
    scan = AdapterRegistry(identity_adapter.parent, base["id"], base["sha256"]).scan()
    assert list(scan.adapters) == ["lorag-identity"], scan.refused
    engine = LocalEngine(embedded_model_dir, base["id"])
    params = SamplingParams(max_tokens=32, temperature=0)

    async def ask_all():
        await engine.load_adapter(scan.adapters["lorag-identity"])
        asks = [engine.generate([Message("user", q)], params, a) for a in ("lorag-identity", None) for q in HELD_OUT]
        results = await asyncio.gather(*asks)
        await engine.close()
        return results[: len(HELD_OUT)], results[len(HELD_OUT) :]

    tuned, untuned = asyncio.run(ask_all())
    for question, answer in zip(HELD_OUT, tuned, strict=True):
        assert "lorag" in answer.text.lower(), f"{question!r} -> {answer.text!r}"
        assert answer.finish_reason == "stop", f"{question!r} -> {answer.text!r} did not end its turn"
    for question, answer in zip(HELD_OUT, untuned, strict=True):
        assert "lorag" not in answer.text.lower(), f"base model: {question!r} -> {answer.text!r}"
