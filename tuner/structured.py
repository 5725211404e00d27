"""Samples held to a JSON schema: reinforcement fine-tuning's ``response_format``, applied while GRPO samples.

The recipe's ``response_format`` is OpenAI's ``{"type": "json_schema", "json_schema": {"name": ..., "schema":
{...}}}``; :func:`schema_text` checks its shape and that xgrammar can compile the schema (no tokenizer needed).
:func:`constrain` makes every ``generate`` of a model follow it: TRL's GRPOTrainer samples through the model's
``generate`` and offers no hook for a logits processor (its ``generation_kwargs`` become a ``GenerationConfig``,
which refuses one), so the model's ``generate`` is wrapped to add a fresh xgrammar processor to each call
(xgrammar's processor holds one batch's state). The wrapper is set on the model object, so a PEFT model around
it, TRL's sampling, its evaluation and lorag's held-out greedy answers all go through it. The grammar has no free
whitespace (a small model offered it fills it with blank lines) and tokens with a raw control character are
masked, since strict JSON parsers refuse them inside strings. A sample cut off by ``max_completion_length`` is not
complete JSON: keep the schema's strings bounded or the limit high enough. This module knows nothing about
recipes or trainers.
"""

from __future__ import annotations

import json
import re

import torch
import xgrammar as xgr
from transformers import LogitsProcessor, LogitsProcessorList
from xgrammar.contrib.hf import LogitsProcessor as GrammarProcessor

SPEC_FIELDS = {"name", "schema", "strict", "description"}
"""The fields of ``response_format.json_schema`` (OpenAI's)."""


def schema_text(response_format: dict) -> str:
    """The JSON schema of an OpenAI ``response_format``, as JSON text; ValueError saying what is wrong with it."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        raise ValueError("response_format must be {'type': 'json_schema', 'json_schema': {'name': ..., 'schema': "
                         "{...}}}")  # fmt: skip
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise ValueError("response_format.json_schema.schema must be a JSON schema object")
    extra = sorted(set(response_format) - {"type", "json_schema"}) + sorted(set(spec) - SPEC_FIELDS)
    if extra:
        raise ValueError(f"response_format has an unknown field '{extra[0]}'")
    text = json.dumps(spec["schema"])
    try:
        xgr.Grammar.from_json_schema(text, any_whitespace=False, strict_mode=True)
    except Exception as e:  # xgrammar raises RuntimeError or ValueError for schemas it cannot use
        reason = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", str(e).strip().splitlines()[0])  # xgrammar's time and source
        raise ValueError(f"response_format: the JSON schema cannot be compiled: {reason}") from None
    return text


def constrain(model, tokenizer, response_format: dict) -> None:
    """Make every later ``model.generate`` (sampling or greedy) write JSON valid against the format's schema."""
    vocab_size = model.get_output_embeddings().weight.shape[0]
    stops = model.generation_config.eos_token_id
    stops = ({stops} if isinstance(stops, int) else set(stops or [])) | {tokenizer.eos_token_id}
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stops))
    grammar = xgr.GrammarCompiler(info, max_threads=1).compile_json_schema(
        schema_text(response_format), any_whitespace=False, strict_mode=True
    )
    special = set(info.special_token_ids) | stops
    control = torch.tensor([token not in special and any(byte < 0x20 for byte in text)
                            for token, text in enumerate(info.decoded_vocab[:vocab_size])])  # fmt: skip
    original = model.generate

    def generate(*args, logits_processor=None, **kwargs):
        processors = LogitsProcessorList([*(logits_processor or []), GrammarProcessor(grammar), Masked(control)])
        return original(*args, logits_processor=processors, **kwargs)

    model.generate = generate


class Masked(LogitsProcessor):
    """Never these tokens (a boolean mask over the vocabulary)."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.masked_fill(self.mask.to(scores.device), float("-inf"))
