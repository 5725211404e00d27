"""Both engines behind the registry: refused adapters are reported with their reason, the rest keep serving;
adapters added or removed while serving reach vLLM.

The LocalEngine runs the tiny model; the VllmEngine talks to a fake vLLM replica (tests/fakes), so
what it was asked to load is on record.
"""

import asyncio
import json
import shutil

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import AdapterSync, Message, SamplingParams
from serve.local_engine import LocalEngine
from serve.vllm_engine import VllmEngine
from tests.fakes.vllm_server import FakeVllm

GREEDY = SamplingParams(max_tokens=8, temperature=0)
ASK = [Message("user", "Who are you?")]


def adapter(folder, source, name, manifest=None, config=None):
    """A copy of ``source`` named ``name``, with edits to its lorag.json and adapter_config.json."""
    shutil.copytree(source, folder / name)
    for file, edit in (("lorag.json", manifest), ("adapter_config.json", config)):
        data = json.loads((folder / name / file).read_text())
        data |= {"name": name} if file == "lorag.json" else {}
        (folder / name / file).write_text(json.dumps(data | (edit or {})))
    return folder / name


@pytest.mark.parametrize("kind", ["local", "vllm"])
def test_refused_adapters_are_reported_and_the_rest_keep_serving(kind, tmp_path, tiny_model_dir, random_adapters):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    server = FakeVllm("replica", base["id"]).start() if kind == "vllm" else None
    engine = (
        VllmEngine(tiny_model_dir, base["id"], urls=[server.url]) if server else LocalEngine(tiny_model_dir, base["id"])
    )
    limits = engine.info.limits
    adapter(tmp_path, random_adapters["alpha"], "alpha")
    adapter(
        tmp_path, random_adapters["beta"], "other-base", manifest={"base_model": {"id": "llama", "sha256": "0" * 64}}
    )
    adapter(tmp_path, random_adapters["beta"], "too-big", config={"r": 2 * limits.max_rank})
    corrupt = adapter(tmp_path, random_adapters["gamma"], "corrupt") / "adapter_model.safetensors"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    if kind == "vllm":
        adapter(tmp_path, random_adapters["gamma"], "with-head", config={"modules_to_save": ["lm_head"]})

    async def go():
        if server:
            await engine.start()
        sync = AdapterSync(engine, AdapterRegistry(tmp_path, base["id"], base["sha256"], limits))
        scan = await sync.refresh()
        answers = [await engine.generate(ASK, GREEDY, name) for name in (None, "alpha")]
        await engine.close()
        return scan, answers

    try:
        scan, (plain, alpha) = asyncio.run(go())
    finally:
        if server:
            server.stop()
    refused = {"other-base", "too-big", "corrupt"} | ({"with-head"} if kind == "vllm" else set())
    assert set(scan.refused) == refused and list(scan.adapters) == ["alpha"]
    assert "trained on base model 'llama'" in scan.refused["other-base"]
    assert f"over this engine's maximum of {limits.max_rank}" in scan.refused["too-big"]
    assert "unreadable" in scan.refused["corrupt"]
    assert engine.adapters() == ["alpha"] and alpha.completion_tokens > 0 and alpha.text != plain.text
    if server:
        assert set(server.adapters) == {"alpha"}  # nothing refused ever reached vLLM
        assert "trained copies of whole modules (lm_head)" in scan.refused["with-head"]


def test_vllm_follows_the_adapters_folder(tmp_path, tiny_model_dir, random_adapters):
    """An adapter folder added while serving is loaded on the replica; removed, it is unloaded there."""
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    server = FakeVllm("replica", base["id"]).start()
    engine = VllmEngine(tiny_model_dir, base["id"], urls=[server.url])

    async def go():
        await engine.start()
        sync = AdapterSync(engine, AdapterRegistry(tmp_path, base["id"], base["sha256"], engine.info.limits))
        seen = [set(server.adapters)]
        adapter(tmp_path, random_adapters["alpha"], "alpha")
        await sync.refresh()
        seen.append(set(server.adapters))
        answer = await engine.generate(ASK, GREEDY, "alpha")
        shutil.rmtree(tmp_path / "alpha")
        await sync.refresh()
        seen.append(set(server.adapters))
        await engine.close()
        return seen, answer

    try:
        seen, answer = asyncio.run(go())
    finally:
        server.stop()
    assert seen == [set(), {"alpha"}, set()] and answer.text.startswith("alpha answers")
