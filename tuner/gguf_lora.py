"""A PEFT LoRA adapter written alone as a GGUF LoRA, for llama.cpp's ``--lora`` on the base model's GGUF.

llama.cpp's adapter format: ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``
(llama.cpp scales by alpha / rank, so an rsLoRA's alpha is written times sqrt(rank)), and for each
adapted matrix ``<gguf name>.lora_a`` (rank x in) and ``.lora_b`` (out x rank), float16. The output
rows of the query and key projections are permuted as ``tuner.gguf_model`` permutes the base
weights, so base + B·A here equals the merged model there.

Refused, with one line: adapters other than LoRA, DoRA (its magnitude vector has no GGUF form),
per-module rank or alpha patterns, ``modules_to_save``, and LoRA on the embeddings or output head.
This module knows nothing about merging or Ollama.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tuner.export import ExportError
from tuner.gguf_model import ARCHITECTURES, gguf_tensor_name, permute, read_config

PREFIX = "base_model.model."


def lora_config(adapter_dir: Path) -> dict:
    """The adapter's PEFT config, or ExportError when llama.cpp's LoRA format cannot hold it."""
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise ExportError(f"a {config.get('peft_type')} adapter has no GGUF LoRA form; export it merged (--gguf)")
    for field, why in (
        ("use_dora", "DoRA's magnitude vector"),
        ("rank_pattern", "per-module ranks"),
        ("alpha_pattern", "per-module alphas"),
        ("modules_to_save", "fully trained modules"),
    ):
        if config.get(field):
            raise ExportError(f"llama.cpp's LoRA format has no place for {why}; export it merged (--gguf)")
    return config


def lora_tensors(adapter_dir: Path, config: dict):
    """(module name, A, B) for each adapted matrix, as float32 numpy arrays, B in llama.cpp's row order."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    for key in sorted(weights):
        if not key.endswith(".lora_A.weight"):
            continue
        module = key.removeprefix(PREFIX).removesuffix(".lora_A.weight")
        if module.endswith(("embed_tokens", "lm_head")):
            raise ExportError(f"LoRA on {module} is not written to a GGUF LoRA; export it merged (--gguf)")
        a, b = weights[key].float(), weights[key.replace(".lora_A.", ".lora_B.")].float()
        if module.endswith("q_proj"):
            b = permute(b, n_head)
        elif module.endswith("k_proj"):
            b = permute(b, n_kv)
        yield module, a.numpy(), b.numpy()


def write_lora(adapter_dir: Path, model_dir: Path, path: Path, name: str | None = None) -> Path:
    """Write the LoRA in ``adapter_dir`` (trained on the model in ``model_dir``) to the GGUF file ``path``."""
    import gguf
    import numpy as np

    peft = lora_config(adapter_dir)
    config = read_config(model_dir)
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[config["model_type"]])
    name_map = gguf.get_tensor_name_map(arch, config["num_hidden_layers"])
    rank = peft["r"]
    alpha = peft["lora_alpha"] * (math.sqrt(rank) if peft.get("use_rslora") else 1.0)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name or Path(adapter_dir).name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    count = 0
    for module, a, b in lora_tensors(adapter_dir, config):
        target = gguf_tensor_name(name_map, module + ".weight")
        writer.add_tensor(f"{target}.lora_a", a.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
        writer.add_tensor(f"{target}.lora_b", b.astype(np.float16), raw_dtype=gguf.GGMLQuantizationType.F16)
        count += 1
    if not count:
        raise ExportError(f"{adapter_dir} holds no LoRA matrices")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
