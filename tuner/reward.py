"""Reward model: preference pairs -> TRL's RewardTrainer -> a model that scores an answer to a prompt.

The base model gets a one-output score head (``AutoModelForSequenceClassification``), trained
with the tuning type's adapter (or in full) so that a chosen answer scores above its rejected
one. The held-out figure is TRL's pairwise accuracy: the share of held-out pairs scored in the
right order (``pairwise_accuracy``), with the mean score margin (``reward_margin``). The folder's
``lorag.json`` says ``kind: reward_model``: it is not a chat adapter, it scores for ``method:
grpo`` (``reward_model: <folder>``). Every field of TRL's ``RewardConfig`` can be set in the recipe.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.preference_training import build_preference_trainer, dataset_record, held_out_figures
from tuner.training import TrainingError, publish, train

LORA_KINDS = ("lora", "dora", "rslora", "freeze", "full")
REPORTED = {"eval_accuracy": "pairwise_accuracy", "eval_margin": "reward_margin"}


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    from trl import RewardTrainer

    if recipe.peft_method not in LORA_KINDS:
        raise TrainingError(f"a reward model trains with {', '.join(LORA_KINDS)}, not {recipe.peft_method}")
    trainer, run, data, evaluation = build_preference_trainer(recipe, RewardTrainer, model_dir, runs_dir)
    metrics = train(trainer, run)
    if evaluation:
        metrics |= held_out_figures(trainer, REPORTED)
    return publish(trainer, run, adapters_dir, metrics, {"dataset": dataset_record(run.recipe, data, evaluation)})
