"""What the preference methods (DPO, KTO, ORPO) share: their data, their run, and what they report.

Each method module names its TRL trainer and the data it reads; this module loads the
preference rows (``tuner.preferences``), holds some out, trains through ``tuner.training``,
and reports TRL's own held-out figures: the share of pairs whose implicit reward prefers the
chosen answer (``preference_accuracy``; DPO and ORPO) and the mean reward margin between chosen
and rejected answers (``reward_margin``). With ``replay_prompts`` the base model's answers to
held-out general prompts are compared with the adapter's afterwards (``behaviour.kept``), as
for SFT; none of them is trained on. This module knows nothing about any one trainer.
"""

from __future__ import annotations

from pathlib import Path

from tuner.behaviour import behaviour
from tuner.config import Recipe
from tuner.formats import DatasetError, write_jsonl
from tuner.manifest import BEHAVIOUR, file_sha256
from tuner.preferences import Preferences, load_preferences
from tuner.replay import held_out_answers
from tuner.training import callbacks, held_out_split, publish, start, train, trl_config

REPORTED = {"eval_rewards/accuracies": "preference_accuracy", "eval_rewards/margins": "reward_margin"}


def run_preferences(
    recipe: Recipe, trainer_class, paired: bool, model_dir: Path, adapters_dir: Path, runs_dir: Path,
    cache_dir: Path | None = None,
) -> Path:  # fmt: skip
    """Train ``recipe`` with ``trainer_class`` (a TRL preference trainer) on pairs, or on labelled answers."""
    trainer, run, data, evaluation = build_preference_trainer(recipe, trainer_class, paired, model_dir, runs_dir)
    held_out = []
    if recipe.replay_prompts:  # only measured: the adapter's drift from the base model on general prompts
        held_out = held_out_answers(
            run.model, run.tokenizer, run.base, recipe.replay_prompts, recipe.replay_held_out,
            recipe.replay_max_tokens, recipe.trl("seed"), Path(cache_dir or runs_dir) / "replay",
        )  # fmt: skip
    metrics = train(trainer, recipe, run)
    if evaluation:
        metrics |= held_out_figures(trainer, REPORTED)
    record = {"dataset": dataset_record(recipe, data, evaluation)}
    answers = []
    if held_out:
        record["behaviour"], answers = behaviour(
            trainer.model, run.tokenizer, [], held_out, recipe.behaviour_marker, recipe.behaviour_max_tokens
        )

    def write(folder: Path) -> None:
        if answers:
            write_jsonl(answers, folder / BEHAVIOUR)

    return publish(trainer, run, adapters_dir, metrics, record, write)


def build_preference_trainer(
    recipe: Recipe, trainer_class, paired: bool, model_dir: Path, runs_dir: Path, scorer: bool = False
):
    """``(trainer, run start, training rows, held-out rows)``: the TRL trainer set up, nothing trained yet;
    ``scorer``: on the model with a score head (a reward model)."""
    from datasets import Dataset

    data, evaluation = preference_datasets(recipe, paired)
    run = start(recipe, model_dir, runs_dir, scorer)
    trainer = trainer_class(
        model=run.model,
        args=trl_config(recipe, run, evaluation is not None),
        train_dataset=Dataset.from_list(data.rows),
        eval_dataset=Dataset.from_list(evaluation.rows) if evaluation else None,
        processing_class=run.tokenizer,
        peft_config=run.peft,
        callbacks=callbacks(recipe),
    )
    return trainer, run, data, evaluation


def held_out_figures(trainer, reported: dict[str, str]) -> dict:
    """Eval loss and TRL's held-out figures, under lorag's names (``reported``: TRL's name -> lorag's)."""
    figures = trainer.evaluate()
    return {"eval_loss": figures["eval_loss"]} | {
        name: figures[key] for key, name in reported.items() if key in figures
    }


def preference_datasets(recipe: Recipe, paired: bool) -> tuple[Preferences, Preferences | None]:
    """The training rows and held-out rows (``eval_dataset``, or ``eval_fraction`` of the training rows)."""
    train_rows = load_preferences(recipe.dataset, recipe.dataset_format, recipe.system_prompt)
    if train_rows.paired != paired:
        wanted = "pairs (prompt, chosen, rejected)" if paired else "labelled answers (prompt, completion, label)"
        raise DatasetError(f"{recipe.dataset}: method '{recipe.method}' trains on {wanted}, not {train_rows.format}")
    if recipe.eval_dataset:
        return train_rows, load_preferences(recipe.eval_dataset, train_rows.format, recipe.system_prompt)
    if recipe.eval_fraction == 0:
        return train_rows, None
    kept, held = held_out_split(train_rows.rows, recipe.eval_fraction, recipe.trl("seed"))
    return Preferences(kept, train_rows.format), Preferences(held, train_rows.format)


def dataset_record(recipe: Recipe, data: Preferences, evaluation: Preferences | None) -> dict:
    """What lorag.json says about the data: files, hashes, format, rows."""
    record = {
        "path": recipe.dataset,
        "format": data.format,
        "sha256": file_sha256(Path(recipe.dataset)),
        "rows": {"train": len(data.rows), "eval": len(evaluation.rows) if evaluation else 0},
    }
    if recipe.eval_dataset:
        record |= {"eval_path": recipe.eval_dataset, "eval_sha256": file_sha256(Path(recipe.eval_dataset))}
    return record
