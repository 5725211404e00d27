"""LocalEngine: the base model and its adapters served in this process with transformers + peft.

One copy of the base weights serves LoRA, IA3, prompt-tuning and prefix-tuning adapters. LoRA
adapters live in one ``PeftModel``, applied per row by ``serve.gathered_lora`` (or, for DoRA, by
PEFT on a batch of its own); the other types cannot live in that model, so ``serve.row_adapters``
applies them per row on the same base model. A worker thread takes the oldest waiting request
plus every other waiting request with the same sampling settings (up to ``max_batch``), whatever
their adapters, and runs them as one ``generate`` call, whose rows stream to their callers.

Adapters change in the worker thread too, so nothing else ever touches the model: a load or an
unload is queued and made between two generation steps, while a batch runs, when it cannot
change what the running rows compute (see :meth:`LocalEngine._safe_mid_batch`), else as soon as
the batch ends. Unloading an adapter refuses new requests for it at once and removes it when
its last running request ends. This module knows nothing about HTTP or the registry's checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList

from serve.adapters import AdapterSpec, EngineLimits
from serve.batch_rows import RowRequest, Rows
from serve.batch_sampling import sampling_kwargs
from serve.constrained import Grammars
from serve.decoding import TextStream
from serve.engine import (
    Delta,
    EngineError,
    EngineInfo,
    Generation,
    InvalidRequest,
    Message,
    SamplingParams,
    UnknownAdapter,
    check_context,
    collect,
    prompt_ids,
)
from serve.gathered_lora import GatheredLora
from serve.mid_batch import safe_mid_batch
from serve.row_adapters import ROW_TYPES, RowAdapter, batch_inputs, load_row_adapter

log = logging.getLogger(__name__)
LIMITS = EngineLimits(peft_types=ROW_TYPES | {"LORA"}, max_rank=256, dora=True)  # every type the tuner makes


@dataclass
class _AdapterUse:
    spec: AdapterSpec
    key: str  # its name inside the model: the adapter's name, with "#<n>" for a reloaded version
    row: RowAdapter | None = None  # None for a LoRA, which lives in the PeftModel
    running: int = 0
    draining: bool = False
    drained: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Change:
    """An adapter change for the worker thread; ``mid_batch`` says whether it may be made while a batch runs."""

    make: Callable[[], object]
    mid_batch: Callable[[], bool]
    result: Future = field(default_factory=Future)


class LocalEngine:
    """transformers + peft in process (module docstring); weights and batches on ``device`` in ``dtype`` (a name)."""

    def __init__(self, model_dir: Path, base_name: str, max_batch: int = 8, batch_window_s: float = 0.01,
                 device: str = "cpu", dtype: str = "float32"):  # fmt: skip
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        self.base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.model = self.base  # becomes a PeftModel with the first LoRA adapter
        self.info = EngineInfo(base_name, LIMITS)
        self.context_length = self.base.config.max_position_embeddings
        eos = self.base.generation_config.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        self.max_batch, self.batch_window_s = max_batch, batch_window_s
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # the latest batches run: for metrics and tests
        self._adapters: dict[str, _AdapterUse] = {}
        self._compiler, self._lora = None, GatheredLora()  # the structured-output compiler, made on first use
        self._versions = itertools.count(1)
        self._changes: deque[_Change] = deque()  # made by the worker thread, in order
        self._waiting: deque[RowRequest] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="lorag-local-engine", daemon=True)
        self._worker.start()

    # -- the Engine protocol ---------------------------------------------------------------

    async def stream(
        self, messages: list[Message], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        if self._closed:
            raise EngineError("engine is closed")
        vocabulary = self.base.config.vocab_size
        if unknown := [token for token, _ in params.logit_bias if token >= vocabulary]:
            raise InvalidRequest(f"logit_bias: token {unknown[0]} is outside the model's {vocabulary} tokens")
        ids = await asyncio.to_thread(prompt_ids, self.tokenizer, messages)  # a long prompt: off the event loop
        check_context(len(ids), params.max_tokens, self.context_length)
        grammar = None
        if params.json_schema is not None:
            grammar = await asyncio.to_thread(self._grammars().compile, params.json_schema)
        use = None
        if adapter is not None:
            use = self._adapters.get(adapter)
            if use is None or use.draining:
                raise UnknownAdapter(adapter)
            use.running += 1  # released in the finally below
        stream = TextStream(self.tokenizer, params.stop)
        key, row = (use.key, use.row) if use else (None, None)
        request = RowRequest(ids, params, key, row, stream, asyncio.get_running_loop(), asyncio.Queue(), grammar)
        request.alone = use is not None and use.spec.dora
        with self._wakeup:
            self._waiting.append(request)
            self._wakeup.notify()
        try:
            while True:
                delta = await request.out.get()
                if isinstance(delta, Exception):
                    raise delta
                yield delta
                if delta.finish_reason:
                    return
        finally:
            request.cancelled = True  # a no-op once finished; stops the row if the caller left early
            if use is not None:
                self._release(use)

    async def generate(self, messages: list[Message], params: SamplingParams, adapter: str | None = None) -> Generation:
        return await collect(self.stream(messages, params, adapter))

    async def load_adapter(self, spec: AdapterSpec) -> None:
        """Load ``spec``; a new version of a loaded adapter replaces it at once for new requests, while the
        requests already running finish on the old weights (which are then dropped): none is refused."""
        old = self._adapters.get(spec.name)
        key = spec.name if old is None else f"{spec.name}#{next(self._versions)}"
        try:
            row = await self._change(lambda: self._load(spec, key), safe_mid_batch(spec, self))
        except Exception as e:  # PEFT raises many types for a folder it cannot use
            raise EngineError(f"cannot load adapter {spec.name}: {e}") from e
        self._adapters[spec.name] = _AdapterUse(spec, key, row)
        if old is not None:
            await self._retire(old)

    async def unload_adapter(self, name: str) -> None:
        use = self._adapters.get(name)
        if use is None or use.draining:
            raise UnknownAdapter(name)
        await self._retire(use)
        if self._adapters.get(name) is use:
            del self._adapters[name]

    async def _retire(self, use: _AdapterUse) -> None:
        """Refuse new requests for ``use``, wait for its running ones, and drop its weights."""
        use.draining = True
        if use.running == 0:
            use.drained.set()
        await asyncio.to_thread(use.drained.wait)
        if use.row is None:
            # The last LoRA takes the LoRA layers out of the model, which a running batch still uses.
            await self._change(lambda: self._delete(use.key), lambda: len(self.model.peft_config) > 1)

    def adapters(self) -> list[str]:
        return sorted(name for name, use in self._adapters.items() if not use.draining)

    def _grammars(self) -> Grammars:
        """The structured-output compiler, made on first use (it reads the whole vocabulary)."""
        if self._compiler is None:
            self._compiler = Grammars(self.tokenizer, self.base.config.vocab_size, self.eos_ids)
        return self._compiler

    async def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        await asyncio.to_thread(self._worker.join)
        for change in self._changes:
            change.result.set_exception(EngineError("engine is closed"))

    # -- adapters (made by the worker thread) ----------------------------------------------

    async def _change(self, make: Callable[[], object], mid_batch: Callable[[], bool]):
        if self._closed:
            raise EngineError("engine is closed")
        change = _Change(make, mid_batch)
        with self._wakeup:
            self._changes.append(change)
            self._wakeup.notify()
        return await asyncio.wrap_future(change.result)

    def _make_changes(self, mid_batch: bool) -> None:
        """Make the queued adapter changes, in order; while a batch runs, stop at the first that must wait."""
        while True:
            with self._wakeup:
                if not self._changes or mid_batch and not self._changes[0].mid_batch():
                    return
                change = self._changes.popleft()
            try:
                with torch.inference_mode(False):  # adapter weights are parameters, not inference tensors
                    change.result.set_result(change.make())
            except Exception as e:
                change.result.set_exception(e)

    def _load(self, spec: AdapterSpec, key: str) -> RowAdapter | None:
        from peft import PeftModel

        if spec.peft_type in ROW_TYPES:
            row = load_row_adapter(spec.path, self.base)
            log.info("loaded %s adapter %s from %s", spec.peft_type, spec.name, spec.path)
            return row
        self._lora.invalidate()
        if self.model is self.base:
            self.model = PeftModel.from_pretrained(self.base, str(spec.path), adapter_name=key).eval()
        else:
            try:
                self.model.load_adapter(str(spec.path), adapter_name=key)
            except Exception:
                if key in self.model.peft_config:
                    self.model.delete_adapter(key)
                raise
        log.info("loaded adapter %s from %s", spec.name, spec.path)
        return None

    def _delete(self, name: str) -> None:
        self._lora.invalidate()
        self.model.delete_adapter(name)
        if not self.model.peft_config:  # the last one: back to the plain model, LoRA layers removed
            self.model = self.model.unload()
        log.info("unloaded adapter %s", name)

    def _release(self, use: _AdapterUse) -> None:
        use.running -= 1
        if use.draining and use.running == 0:
            use.drained.set()

    # -- the worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._wakeup:
                while not (self._waiting or self._changes or self._closed):
                    self._wakeup.wait()
                if self._closed:
                    return
            self._make_changes(mid_batch=False)
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._generate(batch)
            except Exception as e:  # one failed batch must not stop the engine
                log.exception("generation failed")
                for request in batch:
                    if not request.done:
                        request.done = True
                        request.loop.call_soon_threadsafe(
                            request.out.put_nowait, EngineError(f"generation failed: {e}")
                        )

    def _next_batch(self) -> list[RowRequest]:
        """The oldest waiting request and, after a short window, the waiting ones that can share its batch."""
        with self._wakeup:
            if not self._waiting:
                return []
        time.sleep(self.batch_window_s)
        with self._wakeup:
            first = self._waiting.popleft()
            batch = [first] + [r for r in self._waiting if r.batch_key == first.batch_key][: self.max_batch - 1]
            for request in batch[1:]:
                self._waiting.remove(request)
        return [r for r in batch if not r.cancelled]

    def _generate(self, batch: list[RowRequest]) -> None:
        self.batch_sizes.append(len(batch))
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            inputs = batch_inputs(self.base, [r.prompt_ids for r in batch], [r.row for r in batch], pad)
            kwargs, logprobs = sampling_kwargs(batch, inputs.input_ids.shape[1], self._grammars)
            rows = Rows(batch, self.eos_ids, functools.partial(self._make_changes, True), logprobs)
            kwargs |= {"stopping_criteria": StoppingCriteriaList([rows]), "pad_token_id": pad}
            lora = contextlib.nullcontext()
            if batch[0].alone:  # a DoRA batch: all its rows are for one adapter, which PEFT runs as the active one
                self.model.set_adapter(batch[0].adapter)
            elif self.model is not self.base:
                lora, more = self._lora.for_batch(self.model, [r.adapter if r.row is None else None for r in batch])
                kwargs |= more
            if batch[0].params.seed is not None:
                torch.manual_seed(batch[0].params.seed)
            with inputs.hooks(self.base), lora:
                self.model.generate(**inputs.generate_kwargs(), **kwargs)
        for request in batch:
            if not request.done:
                request.finish("length", request.text.flush())
