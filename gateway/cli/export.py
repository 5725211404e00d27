"""``lorag export ADAPTER --merge OUT | --gguf OUT``: a fine-tune as a plain model, for engines without adapters.

The adapter is a name in the adapters folder or a folder path; its ``lorag.json`` names the base
model, which is prepared (or found in the cache) like ``lorag finetune`` does. The work runs as a
subprocess, since the gateway never imports peft: ``python -m tuner.export`` for a safetensors
folder (``--merge``), ``python -m tuner.gguf_export`` for GGUF files and an Ollama Modelfile
(``--gguf``). What the folders hold and why an adapter may be refused: those modules and
docs/deploy.md. This module knows nothing about weights.
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
        Path | None, typer.Option(help="Write the base model with the adapter merged in to this folder (safetensors).")
    ] = None,
    gguf: Annotated[
        Path | None, typer.Option(help="Write the merged model as GGUF, with an Ollama Modelfile, to this folder.")
    ] = None,
    quant: Annotated[str, typer.Option(help="GGUF matrices: f16 (default) or q8_0.")] = "f16",
    lora_gguf: Annotated[
        bool, typer.Option(help="With --gguf: also the adapter alone as a GGUF LoRA, and its base model.")
    ] = False,
    dtype: Annotated[str | None, typer.Option(help="Weights' dtype: float32 (default), bfloat16 or float16.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the output folder if it exists.")] = False,
) -> None:
    """Merge an adapter into its base model: a folder vLLM, TGI and transformers load, or GGUF for llama.cpp/Ollama."""
    if (merge is None) == (gguf is None):
        fail("pass one of --merge OUT (safetensors) or --gguf OUT (GGUF and an Ollama Modelfile)")
    if gguf is None and (lora_gguf or quant != "f16"):
        fail("--quant and --lora-gguf go with --gguf")
    if gguf is not None and dtype:
        fail("--dtype goes with --merge; GGUF takes --quant f16 or q8_0")
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
    model_dir = str(prepare_or_fail(base))
    if gguf is not None:
        command = [
            sys.executable,
            "-m",
            "tuner.gguf_export",
            str(folder),
            "--model-dir",
            model_dir,
            "--gguf",
            str(gguf),
        ]
        command += ["--quant", quant] + (["--lora-gguf"] if lora_gguf else [])
    else:
        command = [sys.executable, "-m", "tuner.export", str(folder), "--model-dir", model_dir, "--merge", str(merge)]
        command += ["--dtype", dtype] if dtype else []
    command += ["--overwrite"] if overwrite else []
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)
