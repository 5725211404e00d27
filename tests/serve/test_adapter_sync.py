"""Adapters added, changed or removed while serving reach the engine without a restart."""

import asyncio
import json
import shutil

from serve.adapters import AdapterRegistry
from serve.engine import AdapterSync, Message, SamplingParams
from serve.local_engine import LocalEngine

GREEDY = SamplingParams(max_tokens=8, temperature=0)
ASK = [Message("user", "Who are you?")]


def test_the_engine_follows_the_adapters_folder(tmp_path, tiny_model_dir, random_adapters):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    engine = LocalEngine(tiny_model_dir, base["id"])
    sync = AdapterSync(engine, AdapterRegistry(tmp_path, base["id"], base["sha256"]))

    async def go():
        assert (await sync.refresh()).adapters == {}
        shutil.copytree(random_adapters["alpha"], tmp_path / "alpha")
        await sync.refresh()
        assert engine.adapters() == ["alpha"]
        alpha = await engine.generate(ASK, GREEDY, "alpha")

        # A broken adapter is refused; alpha keeps serving.
        shutil.copytree(random_adapters["beta"], tmp_path / "broken")
        manifest = json.loads((tmp_path / "broken" / "lorag.json").read_text())
        (tmp_path / "broken" / "lorag.json").write_text(json.dumps(manifest | {"name": "broken"}))
        (tmp_path / "broken" / "adapter_model.safetensors").write_bytes(b"not safetensors")
        scan = await sync.refresh()
        assert "unreadable" in scan.refused["broken"] and engine.adapters() == ["alpha"]
        assert (await engine.generate(ASK, GREEDY, "alpha")).text == alpha.text

        # Replacing alpha's files with beta's reloads it; removing the folder unloads it.
        for file in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copy(random_adapters["beta"] / file, tmp_path / "alpha" / file)
        await sync.refresh()
        assert (await engine.generate(ASK, GREEDY, "alpha")).text != alpha.text
        shutil.rmtree(tmp_path / "alpha")
        await sync.refresh()
        assert engine.adapters() == []
        await engine.close()

    asyncio.run(go())
