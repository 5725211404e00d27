"""``lorag export ADAPTER --merge OUT``: a fine-tune as a plain model, for engines that do not load adapters.

The adapter is a name in the adapters folder or a folder path; its ``lorag.json`` names the base
model, which is prepared (or found in the cache) like ``lorag finetune`` does. The merge itself
runs ``python -m tuner.export`` as a subprocess, since the gateway never imports peft. What the
folder holds and why an adapter may be refused: ``tuner.export`` and docs/deploy.md. This module
knows nothing about weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import fail
from gateway.cli.engine_starter import prepare_or_fail
from gateway.settings import get_settings


def export(
    adapter: Annotated[str, typer.Argument(help="Adapter name (in the adapters folder) or adapter folder.")],
    merge: Annotated[
        Path, typer.Option(help="Write the base model with the adapter merged in to this folder (safetensors).")
    ],
    dtype: Annotated[str | None, typer.Option(help="Weights' dtype: float32 (default), bfloat16 or float16.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the output folder if it exists.")] = False,
) -> None:
    """Merge an adapter into its base model: a folder vLLM, TGI and transformers load as a plain model."""
    folder = Path(adapter)
    if not (folder / "lorag.json").is_file():
        folder = get_settings().adapters_dir / adapter
    try:
        manifest = json.loads((folder / "lorag.json").read_text())
        base = manifest["base_model"]["id"]
    except FileNotFoundError:
        fail(f"no adapter '{adapter}': not a folder with lorag.json, nor in {get_settings().adapters_dir}")
    except (ValueError, KeyError, TypeError):
        fail(f"{folder / 'lorag.json'} does not name the adapter's base model")
    command = [sys.executable, "-m", "tuner.export", str(folder), "--model-dir", str(prepare_or_fail(base))]
    command += ["--merge", str(merge)] + (["--dtype", dtype] if dtype else []) + (["--overwrite"] if overwrite else [])
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)
