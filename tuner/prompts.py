"""Prompt rows, what GRPO and reinforcement fine-tuning sample answers to: each prompt's messages and its row.

A row is ``{"prompt": str | messages}`` or OpenAI's ``{"messages": [...]}`` ending with the user's turn (the model
answers it), with any extra fields a grader reads as its ``item``. Read without loading a model or a trainer, so
``python -m tuner check`` reads such a file in a second. This module knows nothing about rewards or trainers.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuner.formats import DatasetError, openai_messages, read_records

Prompt = tuple[list[dict], str]
"""A prompt's chat messages, and its whole row as JSON text (a grader's ``item``)."""


def read_prompts(path: Path) -> list[Prompt]:
    """The prompts of a JSONL (or .json, .csv, .parquet) of ``{"prompt": str | messages}`` or OpenAI's
    ``{"messages": [...]}`` ending with a user turn, as chat messages, each with its row."""
    out = []
    for where, row in read_records(path):
        prompt = row.get("prompt", row.get("messages"))
        if isinstance(prompt, str) and prompt.strip():
            messages = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list) and prompt:
            messages = openai_messages(path, where, {"messages": prompt})
            if messages[-1]["role"] != "user":
                raise DatasetError(f"{path}:{where}: the last message must be the user's: the model answers it")
        else:
            raise DatasetError(f"{path}:{where}: 'prompt' (a non-empty string or list of messages) or 'messages' "
                               "is needed")  # fmt: skip
        out.append((messages, json.dumps(row)))
    if not out:
        raise DatasetError(f"{path}: no rows")
    return out
