"""Checking training data and recipes without loading a model: what ``python -m tuner check`` runs.

The gateway's fine-tuning jobs check an uploaded file before they store it (:func:`check_file`:
any format a method trains on), and a job's recipe with its data before they queue it
(:func:`check_recipe`: the data read exactly as the recipe's method reads it). The methods' records
(:mod:`tuner.methods`) say which methods train on which data. Both raise the
errors training would raise, :class:`~tuner.formats.DatasetError` naming the file and line, so a
user learns of a bad row in seconds rather than after the base model has loaded. This module
knows nothing about models or trainers.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.formats import DatasetError, load_conversations, read_records
from tuner.methods import METHODS
from tuner.preferences import detect_preference_format, load_preferences
from tuner.prompts import read_prompts


def check_file(path: Path) -> dict:
    """The file's format, row count and the methods that train on it, every row checked: chats (SFT),
    preferences (pairs or labelled answers), or prompts (chats ending with the user's turn, or ``prompt`` rows:
    GRPO)."""
    path = Path(path)
    first = next(iter(read_records(path)), None)
    if first is None:
        raise DatasetError(f"{path}: no rows")
    try:
        detect_preference_format(path, *first)
    except DatasetError:
        try:
            data = load_conversations(path)
        except DatasetError:
            try:  # prompts to sample answers to (GRPO, reinforcement fine-tuning)
                return {"format": "prompts", "rows": len(read_prompts(path)), "methods": _training_on("prompts")}
            except DatasetError:
                pass
            raise
        return {"format": data.format, "rows": len(data.rows), "methods": _training_on("chats")}
    data = load_preferences(path)
    methods = _training_on("pairs" if data.paired else "labelled")
    return {"format": data.format, "rows": len(data.rows), "methods": methods}


def check_recipe(recipe: Recipe) -> dict:
    """Rows for training and evaluation, read as ``recipe``'s method reads them."""
    shape = METHODS[recipe.method].data
    if shape == "chats":
        from tuner.sft import datasets

        train, evaluation, _ = datasets(recipe)
        return {"format": train.format, "rows": {"train": len(train.rows), "eval": _count(evaluation)}}
    if shape == "prompts":
        from tuner.grpo import datasets

        prompts, held_out, _ = datasets(recipe)
        return {"format": "prompts", "rows": {"train": len(prompts), "eval": len(held_out)}}
    from tuner.preference_training import preference_datasets

    train, evaluation, _ = preference_datasets(recipe)
    return {"format": train.format, "rows": {"train": len(train.rows), "eval": _count(evaluation)}}


def _training_on(shape: str) -> list[str]:
    return [name for name, method in METHODS.items() if method.data == shape]


def _count(data) -> int:
    return len(data.rows) if data is not None else 0
