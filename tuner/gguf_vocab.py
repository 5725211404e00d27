"""A model folder's tokenizer written into a GGUF file the way llama.cpp reads it.

Byte-level BPE tokenizers only (``tokenizer.ggml.model = gpt2``: SmolLM2, GPT-2, Llama 3, Qwen):
tokens in id order, their types (control for special added tokens, user-defined for the other
added ones), the merges and special token ids (gguf's ``SpecialVocab``), and the pre-tokenizer's
name in llama.cpp, found from the structure of ``tokenizer.json``'s pre-tokenizer (``PRE_TOKENIZERS``).
The chat template goes in with lorag's ``{% generation %}`` markers made plain ``if`` blocks, since
llama.cpp's Jinja engine does not know that tag; they render the same. SentencePiece tokenizers
(Gemma, Llama 2) and unknown pre-tokenizers are refused, not guessed. This module knows nothing
about weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tuner.export import ExportError

# tokenizer.json pre-tokenizer structure -> llama.cpp's tokenizer.ggml.pre (src/llama-vocab.cpp).
PRE_TOKENIZERS = {
    ("ByteLevel",): "gpt-2",  # GPT-2's regex alone
    ("Digits:individual", "ByteLevel"): "smollm",  # digits one by one, then GPT-2's regex
}
_GENERATION = re.compile(r"\{%(-?)\s*(end)?generation\s*(-?)%\}")


def plain_template(template: str) -> str:
    """``template`` with ``{% generation %}`` blocks as ``{% if true %}`` blocks: same text, standard Jinja."""
    return _GENERATION.sub(lambda m: "{%" + m[1] + (" endif " if m[2] else " if true ") + m[3] + "%}", template)


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer; ExportError when lorag does not know it."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    shape = []
    for step in steps:
        kind = step.get("type")
        if kind == "ByteLevel" and step.get("use_regex", True):
            shape.append("ByteLevel")
        elif kind == "Digits":
            shape.append("Digits:individual" if step.get("individual_digits") else "Digits")
        else:
            shape.append(str(kind))
    if tuple(shape) not in PRE_TOKENIZERS:
        raise ExportError(f"the tokenizer's pre-tokenizer ({' + '.join(shape)}) has no llama.cpp name lorag knows")
    return PRE_TOKENIZERS[tuple(shape)]


def add_vocab(writer, model_dir: Path, vocab_size: int) -> None:
    """Write the tokenizer of ``model_dir`` (a byte-level BPE) into ``writer``, padded to ``vocab_size``."""
    import gguf
    from transformers import AutoTokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{model_dir} has no tokenizer.json: lorag writes GGUF for fast (byte-level BPE) tokenizers")
    spec = json.loads(path.read_text())
    model = spec.get("model", {})
    if model.get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise ExportError("the tokenizer is not a byte-level BPE: SentencePiece tokenizers are not written to GGUF yet")
    pre = pre_tokenizer_name(spec)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    if len(by_id) > vocab_size:
        raise ExportError(f"the tokenizer has {len(by_id)} tokens, more than the model's vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise ExportError(f"{path} holds no BPE merges")
    if isinstance(special.chat_template, str):
        special.chat_template = plain_template(special.chat_template)
    special.add_to_gguf(writer, quiet=True)
    probe = tokenizer("a").input_ids
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    steps = (spec.get("pre_tokenizer") or {}).get("pretokenizers", [spec.get("pre_tokenizer") or {}])
    writer.add_add_space_prefix(any(s.get("add_prefix_space") for s in steps if s.get("type") == "ByteLevel"))
