"""The engines by name, and :func:`load_engine`: which one a configuration gets.

:data:`ENGINES` maps each engine's name to the async function that starts it; ``auto`` is the
policy over them, not an engine: the vLLM servers at ``vllm_urls`` when given; else, on a machine
with a GPU, vLLM when it is installed (its server started with ``vllm_args`` added to its command
line); else (or when its server fails to start, with a log line saying why) the LocalEngine. On
CPUs the LocalEngine is the faster server of adapters (docs/results/serve_throughput.md: vLLM's
CPU build has no fused LoRA kernels) and starts in seconds, not minutes. :data:`CHOICES` is the
one list of names that settings, the CLI and this module accept. An engine module is imported
only when its engine is chosen, so vLLM stays unloaded where it is not used. A new engine is one
entry here and one module implementing ``serve.engine.Engine``. This module knows nothing about
HTTP routes or settings.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from serve.engine import Engine, EngineError

log = logging.getLogger(__name__)


async def _vllm(model_dir: Path, base_name: str, urls: list[str] | None, args: list[str] | None) -> Engine:
    from serve.vllm_engine import VllmEngine

    if not urls and not vllm_available():
        raise EngineError("vLLM is not installed here: `make install-vllm` installs the build for this machine")
    return await VllmEngine(model_dir, base_name, urls=urls, extra_args=args).start()


async def _local(model_dir: Path, base_name: str, urls: list[str] | None, args: list[str] | None) -> Engine:
    from serve.local_engine import LocalEngine

    return LocalEngine(model_dir, base_name)


Starter = Callable[[Path, str, "list[str] | None", "list[str] | None"], Awaitable[Engine]]
ENGINES: dict[str, Starter] = {"vllm": _vllm, "local": _local}
CHOICES = ("auto", *ENGINES)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_choice(kind: str) -> str:
    """``kind`` if it names an engine or ``auto``; ValueError saying the choices otherwise."""
    if kind not in CHOICES:
        raise ValueError(f"unknown engine '{kind}': choose {', '.join(CHOICES[:-1])} or {CHOICES[-1]}")
    return kind


async def load_engine(
    kind: str, model_dir, base_name: str, vllm_urls: list[str] | None = None, vllm_args: list[str] | None = None
) -> Engine:
    """The started engine ``kind`` (one of :data:`CHOICES`); ``vllm`` never falls back.

    ``vllm_args`` go on the command line of a vLLM server started here (not of running ``vllm_urls``)."""
    check_choice(kind)
    if kind == "auto" and vllm_urls:
        kind = "vllm"
    if kind != "auto":
        return await ENGINES[kind](model_dir, base_name, vllm_urls, vllm_args)
    if not gpu_available():
        log.info("no GPU: serving with the in-process transformers engine (LocalEngine), the faster one on CPUs")
    elif not vllm_available():
        log.warning("vLLM is not installed: serving with the in-process transformers engine (LocalEngine)")
    else:
        try:
            return await _vllm(model_dir, base_name, None, vllm_args)
        except EngineError as e:
            log.error("vLLM did not start (%s): serving with the in-process transformers engine (LocalEngine)", e)
    return await _local(model_dir, base_name, None, None)
