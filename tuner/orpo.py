"""ORPO: preference pairs -> TRL's ORPOTrainer -> an adapter trained on the chosen answers and away from the rejected.

Odds-ratio preference optimisation adds to the SFT loss on the chosen answer a penalty on the
odds of the rejected one, in one stage and without a reference model (so it costs one forward
pass per answer, not two). ``beta`` weighs the odds-ratio term; every field of TRL's
``ORPOConfig`` (from ``trl.experimental``) can be set in the recipe.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.preference_training import run_preferences


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    from trl.experimental.orpo import ORPOTrainer

    return run_preferences(recipe, ORPOTrainer, model_dir, adapters_dir, runs_dir, cache_dir)
