"""Replay rows: general prompts answered by the base model itself, mixed into an adapter's training.

An adapter trained only on what it should learn (say, its name) learns to answer *everything*
that way. Mixing in the base model's own greedy answers to general prompts teaches it to keep
them. The prompts are split, with the recipe's seed, into the rows trained on and a held-out set
on which :mod:`tuner.behaviour` later measures how far the adapter drifted from the base model.

Answers are generated with the prepared base model at training time, so they always match the
model being tuned, and cached by (base weights, chat template, token limit): one file of every
prompt answered so far. lorag ships that file for the embedded model and its built-in prompts.
Answers that ran out of tokens are dropped: training on them would teach the adapter to stop
mid-sentence. This module knows nothing of trainers or adapters.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from tuner.formats import DatasetError, read_records
from tuner.generation import greedy_answers

BUILTIN = Path(__file__).parent / "data" / "replay" / "prompts.jsonl"
SHIPPED = BUILTIN.parent / "answers"
"""The embedded model's answers to the built-in prompts, as it gives them, so a first run need not generate them:
one file per (base weights, chat template, token limit), named by their hash, as in the cache."""


@dataclass(frozen=True)
class Replay:
    """The replay rows of one run and the held-out general prompts with the base model's answers."""

    rows: list[dict]  # {"messages": [user, assistant]} to train on
    held_out: list[dict]  # {"prompt", "base_answer"}: not trained on; the drift check's questions
    record: dict  # what lorag.json says about them


def read_prompts(source: str) -> tuple[Path, list[str]]:
    """The prompts of a replay file (JSONL of ``{"prompt": ...}``), or of lorag's built-in set for ``builtin``."""
    path = BUILTIN if source == "builtin" else Path(source)
    prompts = []
    for where, row in read_records(path):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise DatasetError(f"{path}: {where}: a replay row needs a non-empty string 'prompt'")
        prompts.append(prompt.strip())
    if len(set(prompts)) != len(prompts):
        duplicate = next(p for p in prompts if prompts.count(p) > 1)
        raise DatasetError(f"{path}: the prompt '{duplicate}' appears twice")
    return path, prompts


def build_replay(
    model, tokenizer, base: dict, source: str, rows: int | None, held_out: int, max_tokens: int, seed: int,
    cache_dir: Path, asked: set[str] = frozenset(), optional: bool = False,
) -> Replay:  # fmt: skip
    """Answer the prompts of ``source`` with the base ``model`` (cached) and split them into train and held-out;
    ``rows=0``: only the held-out ones, to measure drift. Prompts in ``asked`` (the data's own questions, compared
    case-blind) are not trained on: the data says how to answer those. ``optional``: when no answer can be trained on
    (none finished), train on none rather than fail (the rows were ``auto``'s idea, not the recipe's)."""
    if rows == 0:
        held = held_out_answers(model, tokenizer, base, source, held_out, max_tokens, seed, cache_dir)
        return Replay([], held, {"prompts": str(read_prompts(source)[0]), "rows": 0, "held_out": len(held)})
    path, prompts = read_prompts(source)
    random.Random(seed).shuffle(prompts)
    if held_out >= len(prompts):
        raise DatasetError(f"{path}: {len(prompts)} prompts leave none to train on after holding out {held_out}")
    answers = _answers(model, tokenizer, base, prompts, max_tokens, cache_dir)
    held = [{"prompt": p, "base_answer": answers[p]["text"]} for p in prompts[:held_out]]
    asked = {question.strip().lower() for question in asked}
    usable = [p for p in prompts[held_out:] if answers[p]["finished"] and p.lower() not in asked]
    if not usable and not optional:
        raise DatasetError(f"{path}: no base answer finished within {max_tokens} tokens; raise replay_max_tokens")
    chosen = [usable[i % len(usable)] for i in range(rows)] if rows is not None and usable else usable
    train = [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": answers[p]["text"]}]}
        for p in chosen
    ]
    record = {
        "prompts": str(path),
        "prompts_sha256": _sha256(prompts),
        "rows": len(train),
        "distinct": len(set(chosen)),
        "unfinished_dropped": sum(not answers[p]["finished"] for p in prompts[held_out:]),
        "asked_by_data_dropped": sum(p.lower() in asked for p in prompts[held_out:]),
        "held_out": held_out,
        "max_tokens": max_tokens,
        "sha256": _sha256(train),
    }
    return Replay(train, held, record)


def held_out_answers(
    model, tokenizer, base: dict, source: str, held_out: int, max_tokens: int, seed: int, cache_dir: Path
) -> list[dict]:
    """Only the held-out prompts (the same as :func:`build_replay` holds out) with the base model's answers:
    the drift check of a method that trains on no replay rows."""
    _, prompts = read_prompts(source)
    random.Random(seed).shuffle(prompts)
    answers = _answers(model, tokenizer, base, prompts[:held_out], max_tokens, cache_dir)
    return [{"prompt": p, "base_answer": answers[p]["text"]} for p in prompts[:held_out]]


def _answers(model, tokenizer, base: dict, prompts: list[str], max_tokens: int, cache_dir: Path) -> dict[str, dict]:
    """The base model's answer to each prompt: from the cache of every answer it gave before with these settings
    (lorag ships the embedded model's, :data:`SHIPPED`), the rest generated and added to it."""
    key = _sha256([base["sha256"], base.get("chat_template_sha256"), max_tokens])[:32]
    cache = Path(cache_dir) / f"{key}.json"
    known = {}
    for path in (SHIPPED / f"{key}.json", cache):
        if path.is_file():
            known |= json.loads(path.read_text())
    missing = [p for p in dict.fromkeys(prompts) if p not in known]
    if missing:
        generated = greedy_answers(
            model, tokenizer, [[{"role": "user", "content": p}] for p in missing], max_tokens,
            desc="replay: base answers",
        )  # fmt: skip
        known |= {p: {"text": a.text, "finished": a.finished} for p, a in zip(missing, generated, strict=True)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(known, indent=1, ensure_ascii=False))
        temporary.replace(cache)
    return {p: known[p] for p in prompts}


def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
