"""A training process's progress file read as OpenAI's job events, checkpoints and job figures.

The tuner appends JSON lines to its ``events_file`` (``tuner.events``); :class:`Progress` reads
what is new since its last call and turns each line into what the API shows: a ``metrics``
event per logged step (``train_loss``, ``valid_loss``, ``learning_rate``, ...), a checkpoint per
checkpoint saved, and the job's ``trained_tokens`` and ``estimated_finish``; the run's settings
(the hyperparameters the ``auto`` policy chose, and its rules) and its report after training
(held-out figures and warnings such as underfitting) become message events, and the settings the
job's resolved ``hyperparameters``. A line cut off by a crash is left for the next call. This
module knows nothing about storage or processes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.jobs.ids import new_id
from gateway.jobs.protocol import Checkpoint, CheckpointMetrics, JobEvent

RENAMED = {"loss": "train_loss", "eval_loss": "valid_loss", "mean_token_accuracy": "train_mean_token_accuracy",
           "eval_mean_token_accuracy": "valid_mean_token_accuracy", "reward": "train_reward_mean",
           "eval_reward": "valid_reward_mean"}  # fmt: skip
"""transformers' and TRL's log names -> OpenAI's metric names (GRPO's rewards: reinforcement jobs)."""


@dataclass
class Found:
    """What one read of the progress file found."""

    events: list[JobEvent] = field(default_factory=list)
    checkpoints: list[tuple[Checkpoint, Path]] = field(default_factory=list)
    trained_tokens: int | None = None
    estimated_finish: int | None = None
    hyperparameters: dict | None = None  # OpenAI's names, as the run resolved them


class Progress:
    def __init__(self, path: Path, job_id: str, model_name: str, offset: int = 0):
        """``offset``: the bytes of the file read before (a resumed job's earlier runs)."""
        self.path, self.job_id, self.model_name = path, job_id, model_name
        self.offset = offset
        self.started: float | None = None
        self.first_step: int | None = None

    def read(self) -> Found:
        found = Found()
        if not self.path.exists():
            return found
        with self.path.open("rb") as source:
            source.seek(self.offset)
            data = source.read()
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        for line in whole.decode("utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._take(entry, found)
        return found

    def _take(self, entry: dict, found: Found) -> None:
        kind = entry.get("type")
        if kind == "start":
            self.started, self.first_step = time.time(), None
            found.events.append(_message(f"Training started: {entry.get('max_steps')} steps"))
        elif kind == "settings":
            given = entry.get("hyperparameters", {})
            found.hyperparameters = {"n_epochs": round(given.get("num_train_epochs", 0)) or None} | {
                k: given[k] for k in ("batch_size", "learning_rate_multiplier", "beta") if k in given
            }
            chosen = ", ".join(f"{k}={v['value']} ({v['rule']})" for k, v in entry.get("auto", {}).items())
            found.events.append(_message(f"Settings chosen by auto: {chosen}" if chosen else "No setting left to auto"))
        elif kind == "report":
            found.events.append(_message(f"What was learned: {report_line(entry)}"))
            found.events += [_message(warning, "warn") for warning in entry.get("warnings", [])]
        elif kind == "metrics" and "train_runtime" in entry:  # the trainer's summary of the whole run
            found.events.append(_message(f"Training finished in {entry['train_runtime']:.0f} s"))
        elif kind == "metrics":
            step, total = int(entry.get("step", 0)), entry.get("max_steps")
            data = {"step": step, "total_steps": total} | {
                RENAMED.get(k, k): v for k, v in entry.items() if k not in ("type", "step", "max_steps")
            }
            shown = ", ".join(f"{k}={data[k]:.4g}" for k in ("train_loss", "valid_loss", "train_reward_mean",
                                                              "valid_reward_mean") if k in data)  # fmt: skip
            found.events.append(
                JobEvent(
                    id=new_id("ftevent"),
                    created_at=int(time.time()),
                    level="info",
                    type="metrics",
                    message=f"Step {step}/{total}: {shown or 'logged'}",
                    data=data,
                )  # fmt: skip
            )
            if "num_tokens" in entry:
                found.trained_tokens = int(entry["num_tokens"])
            found.estimated_finish = self._finish(step, total)
        elif kind == "checkpoint":
            step = int(entry["step"])
            metrics = {RENAMED.get(k, k): v for k, v in entry.get("metrics", {}).items() if k in RENAMED}
            checkpoint = Checkpoint(
                id=new_id("ftckpt"), created_at=int(time.time()), fine_tuning_job_id=self.job_id,
                fine_tuned_model_checkpoint=f"{self.model_name}:ckpt-step-{step}", step_number=step,
                metrics=CheckpointMetrics(step=step, **metrics),
            )  # fmt: skip
            found.checkpoints.append((checkpoint, Path(entry["path"])))
            found.events.append(_message(f"Checkpoint created at step {step}"))

    def _finish(self, step: int, total) -> int | None:
        """When training should end, from the pace of the steps this process has run."""
        if self.started is None or not isinstance(total, int) or step <= 0:
            return None
        if self.first_step is None:
            self.first_step, self.started = step, time.time()
            return None
        done = step - self.first_step
        if done <= 0:
            return None
        pace = (time.time() - self.started) / done
        return int(time.time() + pace * max(0, total - step))


def report_line(report: dict) -> str:
    """The held-out figures of a run's report in one line."""
    metrics, behaviour = report.get("metrics", {}), report.get("behaviour", {})
    parts = [f"{name} {metrics[name]:.3g}" for name in ("eval_loss", "preference_accuracy", "pairwise_accuracy",
                                                           "reward_margin", "reward_before", "reward_after")
             if isinstance(metrics.get(name), int | float)]  # fmt: skip
    if taught := behaviour.get("taught"):
        parts.append(f"held-out answers token F1 {taught['f1']:.2f} against the references"
                     + (f" (base model {taught['base_f1']:.2f})" if "base_f1" in taught else ""))  # fmt: skip
    if kept := behaviour.get("kept"):
        parts.append(f"general answers token F1 {kept['f1_vs_base']:.2f} against the base model's (1 is unchanged)")
    return "; ".join(parts) or "no held-out data"


def _message(text: str, level: str = "info") -> JobEvent:
    return JobEvent(id=new_id("ftevent"), created_at=int(time.time()), level=level, message=text)
