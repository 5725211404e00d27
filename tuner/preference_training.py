"""What the preference methods (DPO, KTO, ORPO, reward) share: their data, their run, and what they report.

Each method module names its TRL trainer; its record (:mod:`tuner.methods`) says whether it reads
pairs or labelled answers and whether it trains a model with a score head (a reward model). This
module loads the preference rows (``tuner.preferences``), holds some out, trains through
``tuner.training``, and reports TRL's own held-out figures: the share of pairs whose implicit
reward prefers the chosen answer (``preference_accuracy``; DPO and ORPO) and the mean reward
margin between chosen and rejected answers (``reward_margin``). The held-out prompts are also
answered before and after training, scored against their chosen answers (``behaviour.taught``:
token F1 and words, base beside adapter). With ``replay_prompts`` (``auto``: lorag's everyday prompts) the base model's
answers to held-out general prompts are compared with the adapter's afterwards
(``behaviour.kept``), as for SFT; none of them is trained on. This module knows nothing about any
one trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuner.behaviour import MAX_TAUGHT, before_training, behaviour
from tuner.config import Recipe
from tuner.formats import DatasetError, write_jsonl
from tuner.manifest import BEHAVIOUR, file_sha256
from tuner.methods import METHODS
from tuner.preferences import Preferences, load_preferences
from tuner.replay import held_out_answers
from tuner.training import callbacks, publish, split_held_out, start, train, trl_config

REPORTED = {"eval_rewards/accuracies": "preference_accuracy", "eval_rewards/margins": "reward_margin"}


def run_preferences(
    recipe: Recipe, trainer_class, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None
) -> Path:
    """Train ``recipe`` with ``trainer_class`` (a TRL preference trainer) on pairs, or on labelled answers."""
    trainer, run, data, evaluation = build_preference_trainer(recipe, trainer_class, model_dir, runs_dir)
    recipe = run.recipe
    general = []
    if recipe.replay_prompts:  # only measured: the adapter's drift from the base model on general prompts
        general = held_out_answers(
            run.model, run.tokenizer, run.base, recipe.replay_prompts, recipe.replay_held_out,
            recipe.replay_max_tokens, recipe.trl("seed"), Path(cache_dir or runs_dir) / "replay",
        )  # fmt: skip
    taught = preferred_chats(evaluation)
    before = before_training(trainer.model, run.tokenizer, taught, recipe.behaviour_max_tokens)
    metrics = train(trainer, run)
    if evaluation:
        metrics |= held_out_figures(trainer, REPORTED)
    record = {"dataset": dataset_record(recipe, data, evaluation)}
    answers = []
    if general or taught:
        record["behaviour"], answers = behaviour(
            trainer.model, run.tokenizer, taught, general, recipe.behaviour_marker, recipe.behaviour_max_tokens,
            before,
        )  # fmt: skip

    def write(folder: Path) -> None:
        if answers:
            write_jsonl(answers, folder / BEHAVIOUR)

    return publish(trainer, run, adapters_dir, metrics, record, write)


def build_preference_trainer(recipe: Recipe, trainer_class, model_dir: Path, runs_dir: Path):
    """``(trainer, run start, training rows, held-out rows)``: the TRL trainer set up, nothing trained yet; on the
    model with a score head for a method that trains a reward model."""
    from datasets import Dataset

    data, evaluation, chosen = preference_datasets(recipe)
    scorer = METHODS[recipe.method].scores
    run = start(recipe, model_dir, runs_dir, [_text(row) for row in data.rows], chosen, scorer)
    trainer = trainer_class(
        model=run.model,
        args=trl_config(run, evaluation is not None),
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


def preference_datasets(recipe: Recipe) -> tuple[Preferences, Preferences | None, dict]:
    """The training rows (pairs or labelled answers, as the recipe's method trains on), the held-out rows
    (``eval_dataset``, or a share of the training rows: whole prompts, ``eval_fraction`` or ``auto``'s) and what
    ``auto`` chose in splitting them."""
    paired = METHODS[recipe.method].paired
    train_rows = load_preferences(recipe.dataset, recipe.dataset_format, recipe.system_prompt)
    if train_rows.paired != paired:
        wanted = "pairs (prompt, chosen, rejected)" if paired else "labelled answers (prompt, completion, label)"
        raise DatasetError(f"{recipe.dataset}: method '{recipe.method}' trains on {wanted}, not {train_rows.format}")
    if recipe.eval_dataset:
        return train_rows, load_preferences(recipe.eval_dataset, train_rows.format, recipe.system_prompt), {}
    kept, held, chosen = split_held_out(recipe, train_rows.rows, lambda row: json.dumps(row["prompt"]))
    if not held:
        return train_rows, None, chosen
    return Preferences(kept, train_rows.format), Preferences(held, train_rows.format), chosen


def preferred_chats(evaluation: Preferences | None) -> list[dict]:
    """Each held-out prompt once, with the answer preferred for it (the chosen one, or a desirable KTO answer)."""
    chats, seen = [], set()
    for row in evaluation.rows if evaluation else []:
        answer = row.get("chosen") or (row["completion"] if row.get("label") else None)
        key = json.dumps(row["prompt"])
        if answer and key not in seen:
            seen.add(key)
            chats.append({"messages": row["prompt"] + answer[-1:]})
    return chats[:MAX_TAUGHT]


def _text(row: dict) -> str:
    """A preference row as text, for sizing the data: the prompt and every answer."""
    messages = row["prompt"] + row.get("chosen", []) + row.get("rejected", []) + row.get("completion", [])
    return " ".join(str(m["content"]) for m in messages)


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
