"""LORAG_VLLM_ARGS: vLLM's own server arguments (parallelism, LoRA slots, memory) set without code edits."""

import asyncio

from gateway.cli.engine_starter import engine_starter
from gateway.settings import Settings
from serve.vllm_engine import VllmEngine

ARGS = "--tensor-parallel-size 2 --pipeline-parallel-size 1 --max-loras 8 --kv-cache-memory-bytes 20G"


def test_the_setting_is_split_like_a_shell_line(monkeypatch):
    monkeypatch.setenv("LORAG_VLLM_ARGS", "--max-loras 8 --override-generation-config '{\"temperature\": 0.2}'")
    assert Settings().vllm_args == ["--max-loras", "8", "--override-generation-config", '{"temperature": 0.2}']
    monkeypatch.delenv("LORAG_VLLM_ARGS")
    assert Settings().vllm_args == []


def test_they_end_the_command_line_of_the_vllm_server_lorag_starts(tiny_raw_dir, tiny_model_dir, monkeypatch):
    """vLLM's parser keeps the last of a repeated option, so these win over lorag's defaults."""
    started = {}

    async def start(self):
        started["command"] = self.command(8123)
        return self

    monkeypatch.setattr(VllmEngine, "start", start)
    monkeypatch.setenv("LORAG_BASE_MODEL", str(tiny_raw_dir))
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tiny_model_dir.parents[1]))
    monkeypatch.setenv("LORAG_VLLM_ARGS", ARGS)
    engine, _ = asyncio.run(engine_starter("vllm")())
    command = started["command"]
    assert command[-len(ARGS.split()) :] == ARGS.split()
    assert command.index("--max-loras") < len(command) - len(ARGS.split())  # lorag's default, overridden
