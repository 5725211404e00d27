"""Supervised fine-tuning: chats (or text, or labelled rows) -> TRL's SFTTrainer -> an adapter or model folder.

With ``replay_prompts``, the base model first answers general prompts itself and those answers
are trained on too (``tuner.replay``); after training, ``tuner.behaviour`` measures what the
adapter learned and what it kept. The base model, TRL config, run and output folder are
``tuner.training``'s, shared with every method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuner.behaviour import CHAT_FORMATS, before_training, behaviour
from tuner.config import Recipe
from tuner.evaluation import classification_scores, perplexity, predict_labels
from tuner.formats import Conversations, load_conversations, write_jsonl
from tuner.manifest import BEHAVIOUR, REPLAY, file_sha256
from tuner.replay import Replay, build_replay
from tuner.training import Start, callbacks, publish, split_held_out, start, train, trl_config


@dataclass
class Prepared:
    """A ready-to-train SFTTrainer and what the adapter's manifest needs to know about it."""

    trainer: object  # trl.SFTTrainer
    run: Start
    train: Conversations
    evaluation: Conversations | None
    replay: Replay | None
    base_answers: list[str]  # the base model's greedy answers to the held-out chats, before training


def build_trainer(recipe: Recipe, model_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Prepared:
    """Load data and the base model, and set up TRL's SFTTrainer with the recipe's tuning type.

    ``cache_dir`` keeps what can be reused between runs (the base model's replay answers); default ``runs_dir``.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    train_rows, evaluation, chosen = datasets(recipe)
    texts = [r.get("text") or " ".join(str(m["content"]) for m in r["messages"]) for r in train_rows.rows]
    run = start(recipe, model_dir, runs_dir, texts, chosen, chats=train_rows.format in CHAT_FORMATS)
    recipe = run.recipe
    replay = None
    if recipe.replay_prompts:
        replay = build_replay(
            run.model, run.tokenizer, run.base, recipe.replay_prompts, recipe.replay_rows, recipe.replay_held_out,
            recipe.replay_max_tokens, recipe.trl("seed"), Path(cache_dir or runs_dir) / "replay",
            {m["content"] for r in train_rows.rows for m in r.get("messages", []) if m["role"] == "user"},
            optional="replay_rows" in run.auto,
        )  # fmt: skip
        train_rows = Conversations(train_rows.rows + replay.rows, train_rows.format, train_rows.labels)
    base_answers = before_training(run.model, run.tokenizer, _taught(evaluation), recipe.behaviour_max_tokens)
    text = train_rows.format == "text"
    args = trl_config(run, evaluation is not None, assistant_only_loss=recipe.trl("assistant_only_loss") and not text)
    trainer = SFTTrainer(
        model=run.model,
        args=args,
        train_dataset=Dataset.from_list(_examples(train_rows, run.tokenizer)),
        eval_dataset=Dataset.from_list(_examples(evaluation, run.tokenizer)) if evaluation else None,
        processing_class=run.tokenizer,
        peft_config=run.peft,
        callbacks=callbacks(recipe),
    )
    return Prepared(trainer, run, train_rows, evaluation, replay, base_answers)


def _examples(data: Conversations, tokenizer) -> list[dict]:
    """TRL's rows: conversations, or for text data plain text (chats rendered with the chat template, no BOS:
    the trainer adds it when it tokenizes)."""
    if data.format != "text":
        return [{"messages": r["messages"]} for r in data.rows]
    rows = []
    for row in data.rows:
        text = row.get("text")
        if text is None:
            text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
            if tokenizer.bos_token and text.startswith(tokenizer.bos_token):
                text = text[len(tokenizer.bos_token) :]
        rows.append({"text": text})
    return rows


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    """Train ``recipe`` on the prepared base model in ``model_dir``; return the adapter (or model) folder."""
    prepared = build_trainer(recipe, model_dir, runs_dir, cache_dir)
    recipe = prepared.run.recipe
    metrics = train(prepared.trainer, prepared.run) | _evaluate(prepared)
    figures, answers = _behaviour(recipe, prepared)

    def write(folder: Path) -> None:
        if prepared.replay:
            write_jsonl(prepared.replay.rows, folder / REPLAY)
        if answers:
            write_jsonl(answers, folder / BEHAVIOUR)

    record = {"dataset": _dataset_record(recipe, prepared.train, prepared.evaluation, prepared.replay)}
    if figures:
        record["behaviour"] = figures
    return publish(prepared.trainer, prepared.run, adapters_dir, metrics, record, write)


def _evaluate(prepared: Prepared) -> dict:
    """Eval loss and perplexity, plus accuracy/precision/recall/F1 for classification data."""
    if prepared.evaluation is None:
        return {}
    eval_loss = prepared.trainer.evaluate()["eval_loss"]
    metrics = {"eval_loss": eval_loss, "perplexity": perplexity(eval_loss)}
    if prepared.evaluation.format == "classification":
        labels = prepared.train.labels
        predicted = predict_labels(prepared.trainer.model, prepared.run.tokenizer, prepared.evaluation.rows, labels)
        metrics |= classification_scores([r["label"] for r in prepared.evaluation.rows], predicted, labels)
    return metrics


def _behaviour(recipe: Recipe, prepared: Prepared) -> tuple[dict, list[dict]]:
    """Taught and kept figures (``tuner.behaviour``) on the held-out chats and held-out replay prompts."""
    taught = _taught(prepared.evaluation)
    general = prepared.replay.held_out if prepared.replay else []
    if not taught and not general:
        return {}, []
    model, tokenizer = prepared.trainer.model, prepared.run.tokenizer
    return behaviour(
        model, tokenizer, taught, general, recipe.behaviour_marker, recipe.behaviour_max_tokens, prepared.base_answers
    )


def _taught(evaluation: Conversations | None) -> list[dict]:
    """The held-out chats whose last message is an answer to reproduce: what the behaviour figures ask."""
    if evaluation is None or evaluation.format not in CHAT_FORMATS:
        return []
    return [r for r in evaluation.rows if r["messages"][-1]["role"] == "assistant"]


def datasets(recipe: Recipe) -> tuple[Conversations, Conversations | None, dict]:
    """The training rows, the held-out rows (``eval_dataset``, or a share of the training rows: whole prompts,
    ``eval_fraction`` or ``auto``'s) and what ``auto`` chose in splitting them."""
    options = {"format": recipe.dataset_format, "system_prompt": recipe.system_prompt}
    options["classification_prompt"] = recipe.classification_prompt
    train = load_conversations(recipe.dataset, **options)
    if recipe.eval_dataset:
        return train, load_conversations(recipe.eval_dataset, labels=train.labels or None, **options), {}
    kept, held, chosen = split_held_out(recipe, train.rows, _prompt)
    if not held:
        return train, None, chosen
    return Conversations(kept, train.format, train.labels), Conversations(held, train.format, train.labels), chosen


def _prompt(row: dict) -> str:
    """What a row asks: every message before its answer (a text row: the text itself)."""
    return json.dumps(row["messages"][:-1]) if "messages" in row else row.get("text", "")


def _dataset_record(
    recipe: Recipe, train: Conversations, evaluation: Conversations | None, replay: Replay | None
) -> dict:
    replayed = len(replay.rows) if replay else 0
    record = {
        "path": recipe.dataset,
        "format": train.format,
        "sha256": file_sha256(Path(recipe.dataset)),
        "rows": {"train": len(train.rows) - replayed, "eval": len(evaluation.rows) if evaluation else 0},
    }
    if replay:
        record["rows"]["replay"] = replayed
        record["replay"] = replay.record
    if recipe.eval_dataset:
        record |= {"eval_path": recipe.eval_dataset, "eval_sha256": file_sha256(Path(recipe.eval_dataset))}
    if train.labels:
        record["labels"] = train.labels
    return record
