"""A transformers Llama folder written as one GGUF file, for llama.cpp and Ollama, on gguf's ``GGUFWriter``.

``write_model(folder, path, quant)`` writes llama.cpp's ``llama`` architecture: the hyper-parameters
under ``llama.*``, each tensor under the name gguf's own ``TensorNameMap`` gives it, and the query
and key projections permuted into llama.cpp's rotary layout (``permute``: transformers splits each
head's rotary dimensions in halves, llama.cpp interleaves them; transformers' GGUF loader undoes
exactly this). Vectors (norms, biases) stay float32; matrices become ``f16`` or ``q8_0`` (``f16``
where a row is not a whole number of 32-value blocks). The tokenizer is ``tuner.gguf_vocab``'s.

It converts Llama models only (SmolLM2, TinyLlama, Llama 2 and 3 without rope scaling, and their
merged fine-tunes); any other architecture or rope scaling is refused with one line, before anything
is written. This module knows nothing about adapters or Ollama.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuner.export import ExportError
from tuner.gguf_vocab import add_vocab

QUANTS = ("f16", "q8_0")
ARCHITECTURES = {"llama": "LLAMA"}  # transformers model_type -> gguf.MODEL_ARCH member


def read_config(folder: Path) -> dict:
    """The folder's config.json, or ExportError when its architecture has no GGUF conversion here."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except FileNotFoundError:
        raise ExportError(f"{folder} has no config.json") from None
    kind = config.get("model_type")
    if kind not in ARCHITECTURES:
        raise ExportError(f"no GGUF conversion for architecture '{kind}': lorag writes {', '.join(ARCHITECTURES)}")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ExportError(f"rope scaling '{rope.get('rope_type', rope.get('type'))}' is not written to GGUF yet")
    return config


def permute(weight, n_head: int):
    """Rows of a query or key projection (``n_head`` heads) from transformers' rotary layout to llama.cpp's."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_tensor_name(name_map, hf_name: str) -> str:
    """GGUF's name for a transformers tensor name, by gguf's own mapping; ExportError when it has none."""
    found = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if found is None:
        raise ExportError(f"tensor '{hf_name}' has no GGUF name for this architecture")
    return found


def encode(array, quant: str):
    """``array`` (float32) as (data, ggml type): vectors float32, matrices ``quant`` where their rows allow it."""
    import gguf
    import numpy as np

    if array.ndim < 2:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and array.shape[-1] % 32 == 0:
        kind = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(array, kind), kind
    return array.astype(np.float16), gguf.GGMLQuantizationType.F16


def model_tensors(folder: Path, config: dict):
    """(transformers name, float32 numpy array in llama.cpp's layout) for every tensor GGUF keeps."""
    import torch
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ExportError(f"{folder} has no safetensors weights")
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    for file in files:
        with safe_open(file, framework="pt") as weights:
            for name in weights.keys():
                if name == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # llama.cpp reads a missing output matrix as the token embeddings
                data = weights.get_tensor(name).to(torch.float32)
                if name.endswith(("q_proj.weight", "q_proj.bias")):
                    data = permute(data, n_head)
                elif name.endswith(("k_proj.weight", "k_proj.bias")):
                    data = permute(data, n_kv)
                yield name, data.numpy()


def add_hyperparameters(writer, config: dict) -> None:
    """llama.cpp's ``llama.*`` keys from a transformers Llama config."""
    n_head = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def write_model(folder: Path, path: Path, quant: str = "f16", name: str | None = None) -> Path:
    """Write the model in ``folder`` (a transformers Llama) to the GGUF file ``path``; return ``path``."""
    import gguf

    if quant not in QUANTS:
        raise ExportError(f"quantization '{quant}' is not one of {', '.join(QUANTS)}")
    config = read_config(folder)
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[config["model_type"]])
    name_map = gguf.get_tensor_name_map(arch, config["num_hidden_layers"])
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or Path(folder).name)
    add_hyperparameters(writer, config)
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(writer, Path(folder), config["vocab_size"])
    for hf_name, array in model_tensors(folder, config):
        data, kind = encode(array, quant)
        writer.add_tensor(gguf_tensor_name(name_map, hf_name), data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
