"""Export an adapter as GGUF for llama.cpp and Ollama: the merged model, its Modelfile, and the LoRA alone.

``python -m tuner.gguf_export ADAPTER --model-dir PREPARED --gguf OUT [--quant f16|q8_0] [--lora-gguf]``
merges the adapter as ``tuner.export`` does, then writes into ``OUT``:

- ``<name>.gguf``: the merged model (``tuner.gguf_model``, lorag's own converter on gguf's writer);
- ``Modelfile``: for ``ollama create``, from the model's chat template (``tuner.ollama``);
- with ``--lora-gguf``: ``<name>-lora.gguf``, the adapter alone (``tuner.gguf_lora``), and
  ``<base>.gguf``, the base model it applies to (``llama-server -m <base>.gguf --lora <name>-lora.gguf``);
- ``lorag-export.json``: which adapter and base, the quantization, the files.

Refused with one line before anything is written: a reward model (it scores, it does not
chat), an adapter that adds virtual tokens (prompt, prefix, P-tuning), an architecture the converter
does not know. Everything is written in a hidden folder beside ``OUT`` and renamed into place at
the end, so a failure leaves no partial file. This module knows nothing about serving.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tuner.export import EXPORT_MANIFEST, ExportError, adapter_manifest, merge
from tuner.gguf_lora import lora_config, write_lora
from tuner.gguf_model import QUANTS, read_config, write_model
from tuner.manifest import lorag_version, read_base_model
from tuner.ollama import modelfile


def export_gguf(
    adapter_dir: Path, model_dir: Path, out: Path, quant: str = "f16", lora: bool = False, overwrite: bool = False
) -> Path:
    """Write the GGUF export of the adapter in ``adapter_dir`` (base in ``model_dir``) to the folder ``out``."""
    adapter_dir, model_dir, out = Path(adapter_dir), Path(model_dir), Path(out)
    manifest = adapter_manifest(adapter_dir)
    if manifest.get("kind") == "reward_model":
        raise ExportError(f"{adapter_dir.name} is a reward model: it scores answers and does not generate text")
    if quant not in QUANTS:
        raise ExportError(f"quantization '{quant}' is not one of {', '.join(QUANTS)}")
    read_config(model_dir)
    if lora:
        lora_config(adapter_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} already exists; choose another folder or pass --overwrite")
    name = manifest.get("name", adapter_dir.name)
    base = read_base_model(model_dir)
    files = {"model": f"{name}.gguf", "modelfile": "Modelfile"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.tmp-") as tmp:
        merged = merge(adapter_dir, model_dir, Path(tmp) / "merged")
        work = Path(tmp) / out.name
        work.mkdir()
        write_model(merged, work / files["model"], quant, name)
        (work / files["modelfile"]).write_text(modelfile(merged, files["model"]))
        if lora:
            base_name = Path(base["id"]).name  # a hub id's or a local path's last part
            files |= {"lora": f"{name}-lora.gguf", "base": f"{base_name}.gguf"}
            write_lora(adapter_dir, model_dir, work / files["lora"], name)
            write_model(model_dir, work / files["base"], quant, base_name)
        record = {
            "adapter": name,
            "base_model": manifest.get("base_model"),
            "format": "gguf",
            "quantization": quant,
            "files": files,
            "converter": "lorag (tuner.gguf_model on gguf's GGUFWriter)",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "lorag_version": lorag_version(),
        }
        (work / EXPORT_MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.gguf_export", description="Export an adapter as GGUF.")
    parser.add_argument("adapter", type=Path, help="adapter folder (PEFT weights and lorag.json)")
    parser.add_argument("--model-dir", type=Path, required=True, help="the prepared base model it was trained on")
    parser.add_argument("--gguf", type=Path, required=True, metavar="OUT", help="folder for the GGUF files")
    parser.add_argument("--quant", choices=QUANTS, default="f16", help="matrices' type (default: f16)")
    parser.add_argument("--lora-gguf", action="store_true", help="also the adapter alone as a GGUF LoRA, and its base")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        out = export_gguf(args.adapter, args.model_dir, args.gguf, args.quant, args.lora_gguf, args.overwrite)
    except (ExportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
