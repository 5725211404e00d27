"""DPO: preference pairs -> TRL's DPOTrainer -> an adapter that makes the chosen answers likelier than the rejected.

Direct preference optimisation needs no reward model: it raises the policy's log-probability
margin between chosen and rejected answers relative to a frozen reference, the base model itself
(with a PEFT adapter, the adapter switched off; with ``full`` or ``freeze``, a copy TRL keeps).
``beta`` (default 0.1) sets how far the policy may move from the reference; every other field of
TRL's ``DPOConfig`` (``loss_type``, ``label_smoothing``, ...) can be set in the recipe.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.preference_training import run_preferences


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    from trl import DPOTrainer

    return run_preferences(recipe, DPOTrainer, model_dir, adapters_dir, runs_dir, cache_dir)
