"""Export an adapter as a plain model: its weights merged into the base model's, for other engines.

``python -m tuner.export ADAPTER --model-dir PREPARED --merge OUT`` loads the prepared base model,
applies the adapter with PEFT and merges it (``merge_and_unload``), and writes a safetensors
folder with the tokenizer and chat template the adapter was trained with: vLLM, TGI and
transformers load it as a plain model, and ``lorag model prepare --model OUT`` serves it as a base.
``lorag-export.json`` in the folder records which adapter and base it came from. The adapter must
match the base (weights sha256 in its ``lorag.json``), and must change weights: prompt and
prefix tuning add virtual tokens, which no plain model holds. The folder is written next to
``OUT`` and renamed into place. This module knows nothing about serving or how the adapter was
trained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tuner.manifest import MANIFEST, lorag_version, read_base_model

EXPORT_MANIFEST = "lorag-export.json"
MERGEABLE = {"LORA", "IA3"}  # PEFT types whose update is a weight change (DoRA is a LoRA)
DTYPES = ("float32", "bfloat16", "float16")


class ExportError(RuntimeError):
    """The adapter cannot be exported; the message is one line for the user."""


def merge(adapter_dir: Path, model_dir: Path, out: Path, dtype: str | None = None, overwrite: bool = False) -> Path:
    """Write the base model in ``model_dir`` with the adapter merged in to ``out``; return ``out``."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, out = Path(adapter_dir), Path(out)
    manifest = adapter_manifest(adapter_dir)
    if manifest.get("kind") == "reward_model":
        raise ExportError(f"{adapter_dir.name} is a reward model: it scores answers and does not generate text")
    base = read_base_model(model_dir)
    if manifest.get("base_model", {}).get("sha256") != base["sha256"]:
        raise ExportError(f"{adapter_dir.name} was trained on another base model than {model_dir}")
    peft_type = str(PeftConfig.from_pretrained(adapter_dir).peft_type.value)
    if peft_type not in MERGEABLE:
        raise ExportError(f"a {peft_type} adapter adds virtual tokens, not weights: nothing to merge into a model")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} already exists; choose another folder or pass --overwrite")

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    if dtype:
        merged = merged.to(getattr(torch, dtype))
    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if has_tokenizer else model_dir)
    record = {
        "adapter": manifest.get("name", adapter_dir.name),
        "adapter_created": manifest.get("created"),
        "peft_type": peft_type,
        "base_model": manifest["base_model"],
        "chat_template_sha256": manifest.get("chat_template_sha256"),
        "dtype": dtype or "float32",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "lorag_version": lorag_version(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.tmp-") as tmp:
        work = Path(tmp) / out.name
        merged.save_pretrained(work)
        tokenizer.save_pretrained(work)
        (work / EXPORT_MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    return out


def adapter_manifest(adapter_dir: Path) -> dict:
    try:
        return json.loads((adapter_dir / MANIFEST).read_text())
    except FileNotFoundError:
        raise ExportError(f"{adapter_dir} is not a lorag adapter folder (no {MANIFEST})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.export", description="Export an adapter as a plain model.")
    parser.add_argument("adapter", type=Path, help="adapter folder (PEFT weights and lorag.json)")
    parser.add_argument("--model-dir", type=Path, required=True, help="the prepared base model it was trained on")
    parser.add_argument("--merge", type=Path, required=True, metavar="OUT", help="folder for the merged model")
    parser.add_argument("--dtype", choices=DTYPES, help="weights' dtype (default: float32, as merged)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        out = merge(args.adapter, args.model_dir, args.merge, args.dtype, args.overwrite)
    except (ExportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
