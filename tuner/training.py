"""What every training method shares: the model it starts from, TRL's config, the run, and the folder it writes.

A method module (``tuner.sft``, ``tuner.dpo``, ...) loads its data, builds its TRL trainer from
:func:`start`'s model and :func:`trl_config`, and hands it to :func:`train` and :func:`publish`.
Adapters (every PEFT tuning type) are written as a PEFT folder; ``freeze`` and ``full`` runs as a
complete model folder with the tokenizer, which ``lorag serve`` can serve as a base model. Both
carry ``lorag.json`` and the loss curve. This module knows nothing about data formats or any
one method's metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner import auto
from tuner.config import Recipe
from tuner.distributed import distributed_record, is_main_process, start_device
from tuner.evaluation import overfitting_warning, underfitting_warning
from tuner.events import append_event
from tuner.lm_head import enable_compact_lm_head
from tuner.manifest import LOSS_CURVE, check_free, plot_loss_curve, read_base_model
from tuner.manifest import publish as publish_folder
from tuner.methods import METHODS
from tuner.peft_settings import WHOLE_MODEL, freeze_all_but_last, method_settings, peft_config
from tuner.trl_args import build_config

log = logging.getLogger("tuner")


NOT_HYPERPARAMETERS = {"name", "model", "dataset", "eval_dataset", "overwrite", "events_file"}
SAMPLED_ROWS = 20_000
"""The rows tokenized to size the data for the ``auto`` policy; a larger set is measured on a sample."""
"""Recipe fields the manifest records elsewhere, or not at all."""


class TrainingError(RuntimeError):
    """Training cannot start or finish; the message is one line for the user."""


@dataclass
class Start:
    """The model a run starts from, its tokenizer and base model, where its checkpoints go, and the recipe as it
    runs: every field ``auto`` chose filled in (``auto`` says which, and by what rule)."""

    recipe: Recipe
    model_dir: Path
    base: dict  # the prepared base model's lorag-model.json
    tokenizer: object
    model: object  # the base model; with freeze, only its last layers still require grad
    peft: object | None  # PEFT's config for the trainer; None for freeze and full
    run_dir: Path
    auto: dict[str, auto.Choice]


def start(
    recipe: Recipe, model_dir: Path, runs_dir: Path, texts: list[str], chosen: dict[str, auto.Choice],
    scorer: bool = False, chats: bool = True,
) -> Start:  # fmt: skip
    """Load the prepared base model, settle what the recipe leaves to ``auto``, and clear an earlier run of the same
    name.

    ``texts``: the training rows as text, which the policy sizes; ``chosen``: what the policy already chose while
    the data was read (the held-out share). ``scorer``: the model with a one-output score head instead of its
    vocabulary (a reward model); ``chats``: whether the rows are conversations to answer."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    base = read_base_model(model_dir)
    run_dir = Path(runs_dir) / recipe.name
    if not recipe.resume_from_checkpoint and run_dir.exists() and is_main_process():
        shutil.rmtree(run_dir)  # checkpoints of an earlier run under this name
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    chosen = chosen | auto.choose(recipe, data_size(texts, tokenizer, chats), model_size(model_dir))
    recipe = auto.apply(recipe, chosen)
    for field, choice in chosen.items():
        log.info("auto: %s = %s (%s)", field, choice.value, choice.rule)
    if scorer:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, dtype=torch.float32, num_labels=1, pad_token_id=tokenizer.pad_token_id
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if recipe.peft_method == "freeze":
        layers = len(model.get_decoder().layers)
        if recipe.freeze_trainable_layers > layers:
            raise TrainingError(f"freeze_trainable_layers is {recipe.freeze_trainable_layers}; the model has {layers}")
        freeze_all_but_last(model, recipe.freeze_trainable_layers)
    model = model.to(start_device())
    if recipe.compact_lm_head:
        enable_compact_lm_head()
    peft = peft_config(recipe, model_dir)
    if scorer and peft is not None:
        peft.task_type = "SEQ_CLS"  # PEFT then trains the new score head in full beside the adapter
    return Start(recipe, Path(model_dir), base, tokenizer, model, peft, run_dir, chosen)


def data_size(texts: list[str], tokenizer, chats: bool = True) -> auto.DataSize:
    """Rows, tokens and the longest row of the training data (a larger set measured on a sample)."""
    sample = texts if len(texts) <= SAMPLED_ROWS else random.Random(0).sample(texts, SAMPLED_ROWS)
    lengths = [len(ids) for ids in tokenizer(sample, add_special_tokens=False)["input_ids"]] if sample else [0]
    tokens = round(sum(lengths) * len(texts) / max(len(sample), 1))
    return auto.DataSize(len(texts), tokens, max(lengths), chats)


def model_size(model_dir: Path) -> auto.ModelSize:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir).get_text_config()
    return auto.ModelSize(config.hidden_size, getattr(config, "max_position_embeddings", None) or 2048)


def native_bf16() -> bool:
    """Whether this machine computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX, where bf16 autocast trains the embedded model about 1.15x faster with the same held-out figures
    (docs/training.md). Elsewhere bf16 on a CPU is emulated, and slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


def trl_config(run: Start, has_eval: bool, **lorag_fields):
    """TRL's config of the run's method; ``lorag_fields`` are values lorag derives from its own fields."""
    recipe = run.recipe
    early_stopping = recipe.early_stopping_patience is not None
    if early_stopping and not has_eval:
        raise TrainingError("early_stopping_patience needs eval data: set eval_dataset or eval_fraction")
    bf16 = recipe.bf16 if recipe.bf16 is not None else native_bf16()
    fields = lorag_fields | {"use_cpu": not torch.cuda.is_available()} | recipe.trl_fields  # gloo between CPUs
    if recipe.learning_rate_multiplier != 1.0:
        fields["learning_rate"] = recipe.trl("learning_rate") * recipe.learning_rate_multiplier
    if early_stopping and recipe.trl("eval_steps"):
        fields["save_steps"] = recipe.trl("eval_steps")  # the best checkpoint must be one that was evaluated
    if recipe.max_checkpoints and not early_stopping:
        fields["save_steps"] = 10**9  # saved by epoch instead (callbacks)
    return build_config(recipe.method, fields, run.run_dir, recipe.batch_size, has_eval, early_stopping, bf16)


def callbacks(recipe: Recipe) -> list:
    from transformers import EarlyStoppingCallback

    from tuner.events import EventsFile

    found = [EarlyStoppingCallback(recipe.early_stopping_patience)] if recipe.early_stopping_patience else []
    if recipe.max_checkpoints and not recipe.early_stopping_patience:
        found.append(_epoch_checkpoints(recipe.max_checkpoints))
    return found + ([EventsFile(recipe.events_file)] if recipe.events_file else [])


def _epoch_checkpoints(limit: int):
    """A callback that saves at the end of every few epochs, so that a run saves at most ``limit`` checkpoints (the
    last step is saved by the trainer itself)."""
    from transformers import TrainerCallback

    class EpochCheckpoints(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            every = max(1, math.ceil(state.num_train_epochs / limit))
            if round(state.epoch) % every == 0 and state.global_step < state.max_steps:
                control.should_save = True

    return EpochCheckpoints()


def train(trainer, run: Start) -> dict:
    """Train (resuming when the recipe says so); the training metrics for the manifest."""
    recipe = run.recipe
    resume = recipe.resume_from_checkpoint or None
    if resume is True:
        resume = str(last_complete_checkpoint(run.run_dir))
    if recipe.events_file:
        settings = {
            "learning_rate": trainer.args.learning_rate,
            "num_train_epochs": trainer.args.num_train_epochs,
            "batch_size": recipe.batch_size,
            "learning_rate_multiplier": recipe.learning_rate_multiplier,
        }
        if hasattr(trainer.args, "beta"):
            settings["beta"] = trainer.args.beta
        append_event(recipe.events_file, {"type": "settings", "hyperparameters": settings,
                                          "auto": {k: c.record() for k, c in run.auto.items()}})  # fmt: skip
    result = trainer.train(resume_from_checkpoint=resume)
    return {"train_loss": result.training_loss, "train_runtime_s": result.metrics.get("train_runtime")}


def last_complete_checkpoint(run_dir: Path) -> Path:
    """The latest checkpoint that was saved in full; later ones, cut off by a killed process, are removed."""
    steps = {int(path.name[11:]): path for path in run_dir.glob("checkpoint-*") if path.name[11:].isdigit()}
    for _, checkpoint in sorted(steps.items(), reverse=True):
        if _saved_in_full(checkpoint):
            return checkpoint
        if is_main_process():
            shutil.rmtree(checkpoint)
    raise TrainingError(f"nothing to resume: no complete checkpoint in {run_dir}")


def _saved_in_full(checkpoint: Path) -> bool:
    """Transformers writes ``trainer_state.json`` last: a checkpoint without it, whole, is incomplete."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def split_held_out(recipe: Recipe, rows: list, key: Callable[[object], str]) -> tuple[list, list, dict]:
    """``(train, held out, auto's choice)`` of a file with no eval data: ``eval_fraction`` of the rows, or the share
    the ``auto`` policy holds out when the recipe sets none."""
    choice = auto.held_out_share(recipe, len(rows))
    fraction = choice.value if choice else recipe.eval_fraction
    chosen = {"eval_fraction": choice} if choice else {}
    if not fraction:
        return list(rows), [], chosen
    return *held_out_split(rows, fraction, recipe.trl("seed"), key), chosen


def held_out_split(rows: list, fraction: float, seed: int, key: Callable[[object], str] = repr) -> tuple[list, list]:
    """``(train, held out)``: ``fraction`` of ``rows``, at least one, held out at random with ``seed``.

    Rows with the same ``key`` (say, the same prompt) go to one side together, so a held-out question is one
    training never saw; with a single key, rows are split one by one."""
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    units = list(groups.values()) if len(groups) > 1 else [[row] for row in rows]
    random.Random(seed).shuffle(units)
    wanted = max(1, round(len(rows) * fraction))
    held: list = []
    while units and len(held) < wanted:
        held += units.pop(0)
    if not units:
        raise TrainingError(f"eval_fraction {fraction} leaves no training rows")
    return [row for unit in units for row in unit], held


def history(log_history: list[dict]) -> dict[str, list[dict]]:
    return {
        "train": [{"step": e["step"], "loss": e["loss"]} for e in log_history if "loss" in e],
        "eval": [{"step": e["step"], "loss": e["eval_loss"]} for e in log_history if "eval_loss" in e],
    }


def publish(
    trainer, run: Start, adapters_dir: Path, metrics: dict, record: dict, write: Callable[[Path], None] | None = None
) -> Path | None:
    """Write the adapter (or whole model) folder with ``lorag.json``; ``record`` adds method-specific entries.

    Run by several processes (``accelerate launch``), every one takes part in gathering the weights, and
    the first (rank 0) alone writes the folder and returns it; the others return None."""
    recipe = run.recipe
    target = check_free(adapters_dir, recipe.name, recipe.overwrite)
    saved = run.run_dir / "final"
    trainer.save_model(str(saved))  # every process: FSDP and ZeRO-3 gather the weights; rank 0 writes them
    if not trainer.is_world_process_zero():
        return None
    curves = history(trainer.state.log_history)
    findings = {"metrics": metrics} | {k: v for k, v in record.items() if k == "behaviour"}
    warnings = [w for w in [overfitting_warning(curves["train"], curves["eval"]),
                            underfitting_warning(curves["train"], findings, recipe)] if w]  # fmt: skip
    for warning in warnings:
        log.warning(warning)

    def write_folder(folder: Path) -> None:
        shutil.copytree(saved, folder, dirs_exist_ok=True)  # with the tokenizer: the chat template travels along
        (folder / "README.md").unlink(missing_ok=True)  # TRL's hub model card; lorag.json describes the adapter
        plot_loss_curve(curves, f"{recipe.name} on {run.base['id']}", folder / LOSS_CURVE)
        if write:
            write(folder)

    manifest = _manifest(trainer, run) | record | {"history": curves, "metrics": metrics, "warnings": warnings}
    manifest["distributed"] = distributed_record(trainer)
    publish_folder(target, write_folder, manifest, recipe.overwrite)
    shutil.rmtree(saved)
    if recipe.events_file:
        append_event(recipe.events_file, {"type": "report", **findings, "warnings": warnings})
    log.info("%s written to %s: %s", manifest["kind"], target, json.dumps(metrics))
    return target


def _manifest(trainer, run: Start) -> dict:
    """What lorag.json records about the recipe, base model and tuning type."""
    recipe = run.recipe
    whole = recipe.peft_method in WHOLE_MODEL
    adapter_config = None if whole else trainer.model.peft_config["default"]
    return {
        "name": recipe.name,
        "kind": "reward_model" if METHODS[recipe.method].scores else "model" if whole else "adapter",
        "method": recipe.method,
        "peft_method": recipe.peft_method,
        "peft_type": "NONE" if whole else str(adapter_config.peft_type.value),
        "base_model": {k: run.base[k] for k in ("id", "sha256", "source")},
        "chat_template_sha256": hashlib.sha256(run.tokenizer.chat_template.encode()).hexdigest(),
        recipe.peft_method: method_settings(recipe, adapter_config),
        "hyperparameters": recipe.model_dump(exclude=NOT_HYPERPARAMETERS),
        "auto": {field: choice.record() for field, choice in run.auto.items()},
    }
