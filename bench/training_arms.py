"""What the training benchmarks share: each arm trained in its own process, timed after warm-up steps.

A benchmark script gives its arms, a ``measure(arm, model_dir, steps, warmup, batch) -> dict`` run
in a child process per arm (so each arm's peak memory is its own), and a ``report(results, args)``
that prints the table. Where CUDA is, TRL's peers keep TRL's bf16 default and peak memory is the
GPU's (``torch.cuda.max_memory_allocated``); on CPU, bf16 is off (TRL refuses it there) and peak
memory is the process's max RSS. This module knows nothing about any trainer.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

SAME_ROWS = {"replay_prompts": None, "eval_fraction": 0.0}
"""Recipe fields for lorag's arms: train on exactly the peer's rows, with no replay rows mixed in and none held out
(``auto`` would do both when the recipe leaves them unset)."""


def timed_train(trainer, warmup: int) -> float:
    """Train; the seconds the steps after the first ``warmup`` took."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    return clock.times[-1] - clock.times[warmup - 1]


def trl_precision() -> dict:
    """The TRL config fields a plain-TRL peer changes from TRL's defaults: none where CUDA is; ``bf16=False`` on CPU,
    where TRL's bf16 default refuses to start ("Your setup doesn't support bf16/gpu")."""
    import torch

    return {} if torch.cuda.is_available() else {"bf16": False}


def peak_memory() -> dict:
    """This process's peak memory so far: max RSS, and the GPU's peak allocation where CUDA is."""
    import torch

    found = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if torch.cuda.is_available():
        found["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return found


def memory_column(results: list[dict]) -> tuple[str, str]:
    """(result key, header) of the memory a report compares: the GPU's where every arm measured it, else RSS."""
    if all("peak_gpu_gib" in r for r in results):
        return "peak_gpu_gib", "peak GPU GiB"
    return "peak_rss_gib", "peak RSS GiB"


class ArmFailed(RuntimeError):
    """An arm's child process failed; the message ends with its stderr."""


def arm_in_child(script: str, arm: str, model_dir: Path, steps: int, warmup: int, batch: int) -> dict:
    """Train one arm of ``script`` in a child process (``--arm``); its result."""
    command = [sys.executable, script, "--arm", arm, "--model-dir", str(model_dir)]
    command += ["--steps", str(steps), "--warmup", str(warmup), "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise ArmFailed(f"{arm} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_arms(
    script: str, doc: str, arms: list[str], measure: Callable, report: Callable, steps: int, batch: int
) -> None:
    """The command line of a training benchmark: every arm of ``--arms`` in its own process, then ``report``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=steps, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--arms", default=",".join(arms))
    parser.add_argument("--batch", type=int, default=batch, help="examples per step")
    parser.add_argument("--model-dir", type=Path, help="prepared base model (default: prepare the embedded one)")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm, print JSON
    args = parser.parse_args()
    if args.model_dir is None:
        from gateway.settings import get_settings
        from serve.models import prepare

        args.model_dir = prepare(get_settings().base_model, cache_dir=get_settings().cache_dir)
    if args.arm:
        print(json.dumps(measure(args.arm, args.model_dir, args.steps, args.warmup, args.batch)))
        return
    results = []
    for arm in args.arms.split(","):
        print(f"running {arm} ...", file=sys.stderr, flush=True)
        try:
            results.append(arm_in_child(script, arm, args.model_dir, args.steps, args.warmup, args.batch))
        except ArmFailed as e:
            sys.exit(str(e))
    report(results, args)
