"""VllmEngine: vLLM's own OpenAI server, started as a child process or reached as running replicas.

Started here, the server runs ``python -m vllm.entrypoints.openai.api_server`` on the prepared
model folder (so vLLM reads the same tokenizer and chat template as training), with LoRA enabled,
runtime adapter updating on, and the LoRA limits the adapter registry enforces. Given URLs instead,
it spreads requests across those replicas (round robin) and loads every adapter on every replica.
Adapters are loaded and unloaded at runtime through ``/v1/load_lora_adapter`` and
``/v1/unload_lora_adapter``, so a new adapter is servable without a restart. ``generate`` asks
without streaming (one body to read, not an event per token). Closing a stream closes its HTTP
response, which makes vLLM abort the request. This module never imports vLLM: it only starts its
server and speaks HTTP to it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import orjson
from transformers import AutoTokenizer

from serve.adapters import AdapterSpec, EngineLimits
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
    prompt_ids,
)
from serve.vllm_protocol import error_message, generation, request_body, stream_deltas
from serve.vllm_server import default_dtype, default_max_rank, flag_value, free_port

log = logging.getLogger(__name__)


@dataclass
class _Served:
    """A loaded adapter: its name in vLLM (``<name>#<n>`` for a reloaded version) and its requests in flight."""

    spec: AdapterSpec
    key: str
    running: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def release(self) -> None:
        self.running -= 1
        if self.running == 0:
            self.idle.set()


# vLLM adapts the linear layers of a model; it refuses LoRA on the embeddings and the LM head
# of most architectures (Gemma 3 among them) and any adapter with `modules_to_save`.
LIMITS = EngineLimits(
    peft_types=frozenset({"LORA"}),
    max_rank_setting="`--max-lora-rank N` in LORAG_VLLM_ARGS",
    unsupported_targets=frozenset({"embed_tokens", "lm_head"}),
    modules_to_save=False,
)


class VllmEngine:
    """vLLM behind its OpenAI server; see the module docstring."""

    def __init__(
        self,
        model_dir: Path,
        base_name: str,
        urls: list[str] | None = None,
        max_loras: int = 4,
        max_cpu_loras: int = 16,
        max_lora_rank: int | None = None,
        max_model_len: int = 4096,
        kv_cache_bytes: int = 1 << 30,
        dtype: str = "auto",
        extra_args: list[str] | None = None,
        startup_timeout_s: float = 900,
    ):
        self.model_dir = Path(model_dir)
        self.urls = list(urls or [])
        self.extra_args = list(extra_args or [])
        rank = flag_value(self.extra_args, "--max-lora-rank") or max_lora_rank or default_max_rank(bool(self.urls))
        if not str(rank).isdigit() or int(rank) < 1:
            raise EngineError(f"--max-lora-rank must be a positive whole number, not {rank!r}")
        self.info = EngineInfo(base_name, replace(LIMITS, max_rank=int(rank)))
        self.max_loras, self.max_cpu_loras = max_loras, max_cpu_loras
        # An explicit KV-cache size: on CPU, vLLM otherwise reserves a fraction of all memory
        # (--gpu-memory-utilization, 0.92 by default) and refuses to start on a shared machine.
        self.max_model_len, self.kv_cache_bytes = max_model_len, kv_cache_bytes
        self.dtype = dtype if dtype != "auto" else default_dtype()
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.context_length: int | None = None  # known once started
        self.tokenizer = None  # the prepared model's, for counting prompt tokens
        self._loaded: dict[str, _Served] = {}
        self._versions = itertools.count(1)
        self._next = itertools.count()
        self._session: aiohttp.ClientSession | None = None  # made in the event loop that uses it

    async def start(self) -> VllmEngine:
        """Start the server (when no URLs were given) and wait until every replica is healthy."""
        if not self.urls:
            port = free_port()
            self.process = subprocess.Popen(self.command(port), env=os.environ | {
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true",
            }, start_new_session=True)  # fmt: skip
            self.urls = [f"http://127.0.0.1:{port}"]
        try:
            await asyncio.gather(*(self._wait_healthy(url) for url in self.urls))
            self.context_length = self.max_model_len if self.process else await self._served_context()
            if self.context_length is not None:
                self.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, self.model_dir)
        except BaseException:  # failed, timed out or cancelled (Ctrl-C): leave no server behind
            await self._stop_process()
            raise
        return self

    async def _served_context(self) -> int | None:
        """The smallest ``max_model_len`` the replicas report for the base model (None if none says)."""
        lengths = []
        for url in self.urls:
            async with self._client().get(f"{url}/v1/models") as response:
                listing = await response.json(content_type=None)
            lengths += [m.get("max_model_len") for m in listing.get("data", []) if m.get("id") == self.info.base_model]
        return min((n for n in lengths if isinstance(n, int)), default=None)

    def command(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.info.base_model,
            "--host", "127.0.0.1", "--port", str(port),
            "--dtype", self.dtype,
            "--enable-lora",
            "--max-loras", str(self.max_loras),
            "--max-cpu-loras", str(self.max_cpu_loras),
            "--max-lora-rank", str(self.info.limits.max_rank),
            "--max-model-len", str(self.max_model_len),
            "--kv-cache-memory-bytes", str(self.kv_cache_bytes),
            *self.extra_args,
        ]  # fmt: skip

    async def _wait_healthy(self, url: str) -> None:
        deadline = asyncio.get_running_loop().time() + self.startup_timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise EngineError(f"vLLM server exited with status {self.process.returncode} while starting")
            try:
                async with self._client().get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        return
            except UNREACHABLE:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise EngineError(f"vLLM at {url} not healthy after {self.startup_timeout_s:.0f} s")
            await asyncio.sleep(1)

    # -- the Engine protocol ---------------------------------------------------------------

    async def stream(
        self, messages: list[Message], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        async with self._completion(messages, params, adapter, stream=True) as response:
            async for delta in stream_deltas(response.content):
                yield delta

    async def generate(self, messages: list[Message], params: SamplingParams, adapter: str | None = None) -> Generation:
        """The whole completion in one reply, not streamed: one read of one body instead of an event per token."""
        async with self._completion(messages, params, adapter, stream=False) as response:
            return generation(orjson.loads(await response.read()))

    @asynccontextmanager
    async def _completion(
        self, messages: list[Message], params: SamplingParams, adapter: str | None, stream: bool
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """vLLM's response (status 200) to one chat completion; the adapter counts as running until it is closed."""
        served = None if adapter is None else self._loaded.get(adapter)
        if adapter is not None and served is None:
            raise UnknownAdapter(adapter)
        if self.context_length is not None:  # refused here, before vLLM queues it
            ids = await asyncio.to_thread(prompt_ids, self.tokenizer, messages)
            check_context(len(ids), params.max_tokens, self.context_length)
        body = orjson.dumps(request_body(served.key if served else self.info.base_model, messages, params, stream))
        url = self._replica()
        if served:
            served.running += 1
            served.idle.clear()
        try:
            async with self._client().post(f"{url}/v1/chat/completions", data=body, headers=JSON) as response:
                if response.status != 200:
                    detail = (await response.text(errors="replace"))[:500]
                    if response.status == 400:
                        raise InvalidRequest(error_message(detail))
                    raise EngineError(f"vLLM answered {response.status}: {detail}")
                yield response
        except UNREACHABLE as e:
            raise EngineError(f"vLLM at {url} unreachable: {e!r}") from e
        finally:
            if served:
                served.release()

    async def load_adapter(self, spec: AdapterSpec) -> None:
        """Load on every replica, or on none: replicas that took it unload it again when one refuses. A new
        version of a loaded adapter gets its own name in vLLM and replaces the old one at once for new requests;
        the old one is unloaded when its running requests have finished, so none is refused."""
        old = self._loaded.get(spec.name)
        key = spec.name if old is None else f"{spec.name}#{next(self._versions)}"
        # in place: a replica may still hold this name from an earlier gateway (a restart against running replicas)
        body = {"lora_name": key, "lora_path": str(Path(spec.path).resolve()), "load_inplace": True}
        results = await asyncio.gather(
            *(self._post(url, "/v1/load_lora_adapter", body) for url in self.urls), return_exceptions=True
        )
        if failures := [r for r in results if isinstance(r, BaseException)]:
            loaded = [url for url, r in zip(self.urls, results, strict=True) if not isinstance(r, BaseException)]
            undo = [self._post(url, "/v1/unload_lora_adapter", {"lora_name": key}) for url in loaded]
            await asyncio.gather(*undo, return_exceptions=True)
            raise failures[0]
        self._loaded[spec.name] = _Served(spec, key)
        if old is not None:
            await self._retire(old)

    async def unload_adapter(self, name: str) -> None:
        served = self._loaded.pop(name, None)
        if served is None:
            raise UnknownAdapter(name)
        await self._retire(served)

    async def _retire(self, served: _Served) -> None:
        await served.idle.wait()
        unload = {"lora_name": served.key}
        await asyncio.gather(*(self._post(url, "/v1/unload_lora_adapter", unload) for url in self.urls))

    def adapters(self) -> list[str]:
        return sorted(self._loaded)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._stop_process()

    async def _stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                await asyncio.to_thread(self.process.wait)

    # -- helpers ---------------------------------------------------------------------------

    def _replica(self) -> str:
        if not self.urls:
            raise EngineError("vLLM engine not started")
        return self.urls[next(self._next) % len(self.urls)]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # no total limit on a token stream; connections kept for every request in flight
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def _post(self, url: str, path: str, body: dict) -> None:
        try:
            async with self._client().post(f"{url}{path}", json=body, timeout=aiohttp.ClientTimeout(total=120)) as r:
                status, text = r.status, await r.text(errors="replace")
        except UNREACHABLE as e:
            raise EngineError(f"vLLM at {url} unreachable: {e!r}") from e
        if status != 200:
            raise EngineError(f"vLLM at {url}{path} answered {status}: {text[:300]}")


UNREACHABLE = (aiohttp.ClientError, TimeoutError)
JSON = {"Content-Type": "application/json"}
