"""Supervised fine-tuning recipe: dataset -> TRL SFTTrainer with a PEFT adapter -> adapter folder.

The adapter is a LoRA by default, or IA3, prompt tuning or prefix tuning (``peft_method``); the
recipe only picks PEFT's config for it, and TRL trains every method the same way.

With ``replay_prompts``, the base model first answers general prompts itself and those answers
are trained on too (``tuner.replay``); after training, ``tuner.behaviour`` measures what the
adapter learned and what it kept.

The base model is a folder prepared by ``lorag model prepare``; its tokenizer (and so its chat
template) is saved with the adapter, so serving formats prompts exactly as training did. The
run's checkpoints live in ``runs_dir/<name>``; the adapter is published to
``adapters_dir/<name>`` only when training and evaluation have finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner.behaviour import behaviour
from tuner.config import SFTRecipe
from tuner.evaluation import classification_scores, overfitting_warning, perplexity, predict_labels
from tuner.formats import Conversations, load_conversations, write_jsonl
from tuner.lm_head import enable_compact_lm_head
from tuner.manifest import (
    BEHAVIOUR,
    LOSS_CURVE,
    REPLAY,
    check_free,
    file_sha256,
    plot_loss_curve,
    publish,
    read_base_model,
)
from tuner.peft_settings import method_settings, peft_config
from tuner.replay import Replay, build_replay

log = logging.getLogger("tuner.sft")


class TrainingError(RuntimeError):
    """Training cannot start or finish; the message is one line for the user."""


@dataclass
class Prepared:
    """A ready-to-train SFTTrainer and what the adapter's manifest needs to know about it."""

    trainer: object  # trl.SFTTrainer
    tokenizer: object
    train: Conversations
    evaluation: Conversations | None
    base: dict
    run_dir: Path
    replay: Replay | None


def build_trainer(recipe: SFTRecipe, model_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Prepared:
    """Load data, tokenizer and base model, and set up TRL's SFTTrainer with the recipe's PEFT config.

    ``cache_dir`` keeps what can be reused between runs (the base model's replay answers); default ``runs_dir``.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    base = read_base_model(model_dir)
    train, evaluation = _datasets(recipe)
    run_dir = Path(runs_dir) / recipe.name
    if not recipe.resume_from_checkpoint and run_dir.exists():
        shutil.rmtree(run_dir)  # checkpoints of an earlier run under this name

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    replay = None
    if recipe.replay_prompts:
        replay = build_replay(
            model, tokenizer, base, recipe.replay_prompts, recipe.replay_rows, recipe.replay_held_out,
            recipe.replay_max_tokens, recipe.seed, Path(cache_dir or runs_dir) / "replay",
        )  # fmt: skip
        train = Conversations(train.rows + replay.rows, train.format, train.labels)
    if recipe.compact_lm_head:
        enable_compact_lm_head()
    has_eval = evaluation is not None
    eval_strategy = ("steps" if recipe.eval_steps else "epoch") if has_eval else "no"
    early_stopping = recipe.early_stopping_patience is not None
    if early_stopping and not has_eval:
        raise TrainingError("early_stopping_patience needs eval data: set eval_dataset or eval_fraction")
    bf16 = recipe.bf16 if recipe.bf16 is not None else torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        output_dir=str(run_dir),
        max_length=recipe.max_length,
        packing=recipe.packing,
        assistant_only_loss=recipe.assistant_only_loss and train.format != "text",
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        gradient_checkpointing=recipe.gradient_checkpointing,
        bf16=bf16,
        seed=recipe.seed,
        data_seed=recipe.seed,
        eval_strategy=eval_strategy,
        eval_steps=recipe.eval_steps,
        save_strategy=eval_strategy if early_stopping else "steps",
        save_steps=recipe.eval_steps if early_stopping and recipe.eval_steps else recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        logging_steps=recipe.logging_steps,
        report_to="none",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(_examples(train, tokenizer)),
        eval_dataset=Dataset.from_list(_examples(evaluation, tokenizer)) if has_eval else None,
        processing_class=tokenizer,
        peft_config=peft_config(recipe, model_dir),
        callbacks=[EarlyStoppingCallback(recipe.early_stopping_patience)] if early_stopping else None,
    )
    return Prepared(trainer, tokenizer, train, evaluation, base, run_dir, replay)


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


def run(recipe: SFTRecipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    """Train ``recipe`` on the prepared base model in ``model_dir``; return the adapter folder."""
    target = check_free(adapters_dir, recipe.name, recipe.overwrite)
    prepared = build_trainer(recipe, model_dir, runs_dir, cache_dir)
    trainer = prepared.trainer
    resume = recipe.resume_from_checkpoint or None
    if resume is True and not list(prepared.run_dir.glob("checkpoint-*")):
        raise TrainingError(f"nothing to resume: no checkpoint in {prepared.run_dir}")
    result = trainer.train(resume_from_checkpoint=resume)

    metrics = {"train_loss": result.training_loss, "train_runtime_s": result.metrics.get("train_runtime")}
    metrics |= _evaluate(prepared)
    figures, answers = _behaviour(recipe, prepared)
    history = _history(trainer.state.log_history)
    warnings = [w for w in [overfitting_warning(history["train"], history["eval"])] if w]
    for warning in warnings:
        log.warning(warning)

    def write(folder: Path) -> None:
        trainer.save_model(str(folder))
        (folder / "README.md").unlink(missing_ok=True)  # TRL's hub model card; lorag.json describes the adapter
        plot_loss_curve(history, f"{recipe.name} on {prepared.base['id']}", folder / LOSS_CURVE)
        if prepared.replay:
            write_jsonl(prepared.replay.rows, folder / REPLAY)
        if answers:
            write_jsonl(answers, folder / BEHAVIOUR)

    manifest = _manifest(recipe, prepared) | {"history": history, "metrics": metrics, "warnings": warnings}
    if figures:
        manifest["behaviour"] = figures
    publish(target, write, manifest, recipe.overwrite)
    log.info("adapter written to %s: %s", target, json.dumps(metrics))
    return target


def _evaluate(prepared: Prepared) -> dict:
    """Eval loss and perplexity, plus accuracy/precision/recall/F1 for classification data."""
    if prepared.evaluation is None:
        return {}
    eval_loss = prepared.trainer.evaluate()["eval_loss"]
    metrics = {"eval_loss": eval_loss, "perplexity": perplexity(eval_loss)}
    if prepared.evaluation.format == "classification":
        labels = prepared.train.labels
        predicted = predict_labels(prepared.trainer.model, prepared.tokenizer, prepared.evaluation.rows, labels)
        metrics |= classification_scores([r["label"] for r in prepared.evaluation.rows], predicted, labels)
    return metrics


def _behaviour(recipe: SFTRecipe, prepared: Prepared) -> tuple[dict, list[dict]]:
    """Taught and kept figures (``tuner.behaviour``) on the held-out chats and held-out replay prompts."""
    chats = prepared.evaluation is not None and prepared.evaluation.format in ("openai", "sharegpt", "alpaca")
    taught = [r for r in prepared.evaluation.rows if r["messages"][-1]["role"] == "assistant"] if chats else []
    general = prepared.replay.held_out if prepared.replay else []
    if not taught and not general:
        return {}, []
    model, tokenizer = prepared.trainer.model, prepared.tokenizer
    return behaviour(model, tokenizer, taught, general, recipe.behaviour_marker, recipe.behaviour_max_tokens)


def _manifest(recipe: SFTRecipe, prepared: Prepared) -> dict:
    """What lorag.json records about the recipe, base model and data (training results added by the caller)."""
    adapter_config = prepared.trainer.model.peft_config["default"]
    return {
        "name": recipe.name,
        "method": "sft",
        "peft_method": recipe.peft_method,
        "peft_type": str(adapter_config.peft_type.value),
        "base_model": {k: prepared.base[k] for k in ("id", "sha256", "source")},
        "chat_template_sha256": hashlib.sha256(prepared.tokenizer.chat_template.encode()).hexdigest(),
        recipe.peft_method: method_settings(recipe, adapter_config),
        "hyperparameters": recipe.model_dump(exclude={"name", "model", "dataset", "eval_dataset", "overwrite"}),
        "dataset": _dataset_record(recipe, prepared.train, prepared.evaluation, prepared.replay),
    }


def _datasets(recipe: SFTRecipe) -> tuple[Conversations, Conversations | None]:
    options = {"format": recipe.dataset_format, "system_prompt": recipe.system_prompt}
    options["classification_prompt"] = recipe.classification_prompt
    train = load_conversations(recipe.dataset, **options)
    if recipe.eval_dataset:
        return train, load_conversations(recipe.eval_dataset, labels=train.labels or None, **options)
    if recipe.eval_fraction == 0:
        return train, None
    rows = list(train.rows)
    random.Random(recipe.seed).shuffle(rows)
    held_out = max(1, round(len(rows) * recipe.eval_fraction))
    if held_out >= len(rows):
        raise TrainingError(f"eval_fraction {recipe.eval_fraction} leaves no training rows")
    return (
        Conversations(rows[held_out:], train.format, train.labels),
        Conversations(rows[:held_out], train.format, train.labels),
    )


def _history(log_history: list[dict]) -> dict[str, list[dict]]:
    return {
        "train": [{"step": e["step"], "loss": e["loss"]} for e in log_history if "loss" in e],
        "eval": [{"step": e["step"], "loss": e["eval_loss"]} for e in log_history if "eval_loss" in e],
    }


def _dataset_record(
    recipe: SFTRecipe, train: Conversations, evaluation: Conversations | None, replay: Replay | None
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
