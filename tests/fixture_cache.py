"""Trained test fixtures, kept between test sessions in the lorag cache and keyed by everything that makes them.

A fixture that trains an adapter on the embedded model takes minutes. :func:`cached` builds it once
into ``<cache>/test-fixtures/<name>-<key>/`` and every later session on the machine copies that
folder instead, until anything that could change the result changes: the fixture's own inputs
(recipe, data), the tuner's source and data and the command-line modules that start it, the base
model's hash, or the versions of torch, transformers, TRL and PEFT. Each session gets its own copy,
so a test that writes into its adapters folder never touches the cache. This module knows nothing
about what a fixture trains.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).parents[1]
# what ``lorag finetune`` runs: the tuner, and the command-line modules that start it
SOURCES = ("tuner", "gateway/cli/main.py", "gateway/cli/common.py", "gateway/cli/engine_starter.py",
           "gateway/jobs/tuner_process.py")  # fmt: skip
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def cached(name: str, inputs: Iterable[bytes | str | Path], model_dir: Path, copy_to: Path,
           build: Callable[[Path], None]) -> Path:  # fmt: skip
    """``copy_to`` holding what ``build(folder)`` writes into an empty folder, built at most once per key."""
    from gateway.settings import get_settings

    store = get_settings().cache_dir.expanduser() / "test-fixtures"
    done = store / f"{name}-{_key(inputs, model_dir)}"
    if not done.is_dir():
        store.mkdir(parents=True, exist_ok=True)
        for stale in store.glob(f"{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=store))
        try:
            build(work)
            try:
                work.rename(done)
            except OSError:  # another session built it meanwhile: keep theirs
                if not done.is_dir():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(done, copy_to, dirs_exist_ok=True)
    return copy_to


def _key(inputs: Iterable[bytes | str | Path], model_dir: Path) -> str:
    digest = hashlib.sha256()
    for item in inputs:
        digest.update(item.read_bytes() if isinstance(item, Path) else item.encode() if isinstance(item, str) else item)
    for folder in SOURCES:
        source = ROOT / folder
        for path in sorted(source.rglob("*")) if source.is_dir() else [source]:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    digest.update(json.loads((model_dir / "lorag-model.json").read_text())["sha256"].encode())
    digest.update(" ".join(version(library) for library in LIBRARIES).encode())
    return digest.hexdigest()[:16]
