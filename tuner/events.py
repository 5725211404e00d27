"""Training progress as JSON lines, for a watcher in another process (the gateway's fine-tuning jobs).

:class:`EventsFile` is a transformers ``TrainerCallback``: it appends one JSON object per line to
the recipe's ``events_file`` and flushes it, so a reader following the file sees each line whole:

- ``{"type": "start", "max_steps", "epochs"}`` when training starts;
- ``{"type": "metrics", "step", "max_steps", "epoch", "loss"?, "eval_loss"?, "learning_rate"?, ...}`` for every
  log (every number the trainer logs, e.g. TRL's ``num_tokens`` and reward accuracies);
- ``{"type": "checkpoint", "step", "path", "metrics"}`` for every checkpoint saved, with the latest train and
  eval figures at that step.

The run itself adds, with :func:`append_event`, ``{"type": "settings", "hyperparameters", "auto"}`` before training
(the values it trains with, and what the ``auto`` policy chose and why) and ``{"type": "report", "metrics",
"behaviour"?, "warnings"}`` once the adapter is written (what it learned).

Only the main process writes. This module knows nothing about methods or the gateway.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback


class EventsFile(TrainerCallback):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.latest: dict[str, float] = {}  # the latest value of every figure logged, for checkpoints

    def _write(self, state, event: dict) -> None:
        if state.is_world_process_zero:
            append_event(self.path, event)

    def on_train_begin(self, args, state, control, **kwargs):
        self._write(state, {"type": "start", "max_steps": state.max_steps, "epochs": args.num_train_epochs})

    def on_log(self, args, state, control, logs=None, **kwargs):
        figures = {k: v for k, v in (logs or {}).items() if _is_number(v)}
        self.latest |= figures
        event = {"type": "metrics", "step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch}
        self._write(state, event | figures)

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        metrics = {k: v for k, v in self.latest.items() if k in ("loss", "eval_loss", "mean_token_accuracy",
                                                                 "eval_mean_token_accuracy", "reward",
                                                                 "eval_reward")}  # fmt: skip
        self._write(state, {"type": "checkpoint", "step": state.global_step, "path": str(path), "metrics": metrics})


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def append_event(path: str | Path, event: dict) -> None:
    """One line outside the trainer's callbacks: the settings a run chose, and its report after training."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\n")
