"""A deterministic in-memory Engine that records its calls, and adapter folders the registry accepts.

The answer to a conversation is ``"<adapter or base> says <last user message>"``, then the system
message if there is one (so a retrieval-augmented answer repeats its sources), streamed word
by word (whatever the temperature), cut at the first stop sequence (finish ``stop``) or after
``max_tokens`` words (finish ``length``). Token counts are word counts. Tests can make it fail
(``fail``), hold every stream before its first word until ``gate`` is set, and see which streams
were closed before they finished (``closed``). A test may also give ``reply(messages, params, adapter)``,
which then makes the text of every answer (e.g. a judge's JSON, or answers that differ by seed).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from serve.adapters import AdapterSpec, EngineLimits
from serve.engine import Delta, EngineInfo, Generation, Message, SamplingParams, UnknownAdapter, collect

FAKE_SHA256 = "f" * 64


class FakeEngine:
    def __init__(
        self,
        base_model: str = "fake-base",
        word_delay_s: float = 0.0,
        reply: Callable[[list[Message], SamplingParams, str | None], str] | None = None,
    ):
        self.info = EngineInfo(base_model, EngineLimits())
        self.word_delay_s = word_delay_s
        self.reply = reply
        self.calls: list[tuple[list[Message], SamplingParams, str | None]] = []
        self.closed: list[str | None] = []  # adapter of every stream closed before it finished
        self.loaded: dict[str, AdapterSpec] = {}
        self.fail: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()

    @staticmethod
    def answer(messages: list[Message], adapter: str | None, base_model: str = "fake-base") -> str:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        system = next((m.content for m in messages if m.role == "system"), "")
        return f"{adapter or base_model} says {last_user} {system}".strip()

    async def stream(
        self, messages: list[Message], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        self.calls.append((messages, params, adapter))
        if self.fail is not None:
            raise self.fail
        if adapter is not None and adapter not in self.loaded:
            raise UnknownAdapter(adapter)
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        text, finished = "", False
        try:
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            if self.reply is not None:
                full = self.reply(messages, params, adapter)
            else:
                full = self.answer(messages, adapter, self.info.base_model)
            for count, word in enumerate(full.split(), start=1):
                piece = (" " if text else "") + word
                cut = min((i for i in ((text + piece).find(s) for s in params.stop) if i >= 0), default=-1)
                if cut >= 0:
                    finished = True
                    yield Delta((text + piece)[len(text) : cut], "stop", prompt_tokens, count)
                    return
                text += piece
                if count == params.max_tokens:
                    finished = True
                    yield Delta(piece, "length", prompt_tokens, count)
                    return
                yield Delta(piece)
                await asyncio.sleep(self.word_delay_s)
            finished = True
            yield Delta("", "stop", prompt_tokens, len(text.split()))
        finally:
            if not finished:
                self.closed.append(adapter)

    async def generate(self, messages: list[Message], params: SamplingParams, adapter: str | None = None) -> Generation:
        return await collect(self.stream(messages, params, adapter))

    async def load_adapter(self, spec: AdapterSpec) -> None:
        self.loaded[spec.name] = spec

    async def unload_adapter(self, name: str) -> None:
        if self.loaded.pop(name, None) is None:
            raise UnknownAdapter(name)

    def adapters(self) -> list[str]:
        return sorted(self.loaded)

    async def close(self) -> None:
        self.loaded.clear()


def write_adapter(folder: Path, base_model: str = "fake-base", rank: int = 4) -> Path:
    """A minimal LoRA folder for the fake base model that ``AdapterRegistry`` accepts (named after ``folder``)."""
    folder.mkdir(parents=True)
    manifest = {
        "name": folder.name,
        "method": "sft",
        "base_model": {"id": base_model, "sha256": FAKE_SHA256},
        "lora": {"r": rank, "target_modules": ["q_proj"]},
        "metrics": {"train_loss": 1.0},
        "created": "2025-01-02T03:04:05+00:00",
        "history": [{"step": 1, "loss": 1.0}],
    }
    (folder / "lorag.json").write_text(json.dumps(manifest))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    weights = {
        f"{prefix}.lora_A.weight": np.zeros((rank, 8), dtype=np.float32),
        f"{prefix}.lora_B.weight": np.zeros((8, rank), dtype=np.float32),
    }
    save_file(weights, str(folder / "adapter_model.safetensors"))
    return folder
