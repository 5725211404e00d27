"""The adapter folder: PEFT weights, tokenizer, ``lorag.json`` and a loss-curve PNG.

``lorag.json`` is the contract with ``serve``: the adapter registry reads it to match an adapter
to its base model (id and weights sha256) and chat template before any request reaches an
engine. Folders are written next to their destination and renamed into place, so a reader
never sees half an adapter. This module knows nothing about how training ran.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

MANIFEST = "lorag.json"
BASE_MANIFEST = "lorag-model.json"  # written by `lorag model prepare` into the base model folder
LOSS_CURVE = "loss_curve.png"
REPLAY = "replay.jsonl"  # the base model's answers the adapter was trained on besides its data
BEHAVIOUR = "behaviour.jsonl"  # the answers the behaviour figures were computed from


class AdapterExistsError(FileExistsError):
    pass


def read_base_model(model_dir: Path) -> dict:
    """The prepared base model's ``lorag-model.json`` (id, weights sha256, chat-template sha256)."""
    try:
        return json.loads((Path(model_dir) / BASE_MANIFEST).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{model_dir} is not a prepared lorag model folder (no {BASE_MANIFEST}); "
            "run `lorag model prepare --model ...` first, or train with `lorag finetune`"
        ) from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def lorag_version() -> str:
    try:
        return version("lorag")
    except PackageNotFoundError:
        return "unknown"


def check_free(adapters_dir: Path, name: str, overwrite: bool) -> Path:
    """The adapter's destination; refuses an existing adapter unless ``overwrite``."""
    target = Path(adapters_dir) / name
    if target.exists() and not overwrite:
        raise AdapterExistsError(
            f"adapter '{name}' already exists at {target}; choose another name or --set overwrite=true"
        )
    return target


def publish(target: Path, write: Callable[[Path], None], manifest: dict, overwrite: bool) -> Path:
    """Build the adapter in a temporary sibling with ``write``, add the manifest, rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.tmp-") as tmp:
        work = Path(tmp) / target.name
        work.mkdir()
        write(work)
        manifest = {**manifest, "created": datetime.now(UTC).isoformat(timespec="seconds")}
        manifest["lorag_version"] = lorag_version()
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        check_free(target.parent, target.name, overwrite)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    return target


def plot_loss_curve(history: dict, title: str, path: Path) -> None:
    """Train and eval loss against the optimiser step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for key, style in (("train", "-"), ("eval", "o--")):
        points = history.get(key) or []
        if points:
            ax.plot([p["step"] for p in points], [p["loss"] for p in points], style, label=f"{key} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
