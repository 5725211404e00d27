"""KTO: answers labelled desirable or not -> TRL's KTOTrainer -> an adapter that favours the desirable kind.

Kahneman-Tversky optimisation learns from single answers with a thumbs up or down
(``{"prompt", "completion", "label"}``), no pairs needed, against the same frozen reference as
DPO. ``desirable_weight`` and ``undesirable_weight`` balance unequal counts of the two; every
field of TRL's ``KTOConfig`` can be set in the recipe. Its held-out figure is the reward margin
(TRL reports no pairwise accuracy for unpaired data).
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.preference_training import run_preferences


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    from trl import KTOTrainer

    return run_preferences(recipe, KTOTrainer, model_dir, adapters_dir, runs_dir, cache_dir)
