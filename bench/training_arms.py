"""What the training benchmarks share: each arm trained in its own process, timed after warm-up steps.

A benchmark script gives its arms, a ``measure(arm, model_dir, steps, warmup) -> dict`` run in a
child process per arm (so each arm's peak memory is its own), and a ``report(results, args)``
that prints the table. This module knows nothing about any trainer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


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


def run_arms(script: str, doc: str, arms: list[str], measure: Callable, report: Callable, steps: int) -> None:
    """The command line of a training benchmark: every arm of ``--arms`` in its own process, then ``report``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=steps, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--arms", default=",".join(arms))
    parser.add_argument("--model-dir", type=Path, help="prepared base model (default: prepare the embedded one)")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm, print JSON
    args = parser.parse_args()
    if args.model_dir is None:
        from gateway.settings import get_settings
        from serve.models import prepare

        args.model_dir = prepare(get_settings().base_model, cache_dir=get_settings().cache_dir)
    if args.arm:
        print(json.dumps(measure(args.arm, args.model_dir, args.steps, args.warmup)))
        return
    results = []
    for arm in args.arms.split(","):
        command = [sys.executable, script, "--arm", arm, "--model-dir", str(args.model_dir)]
        command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        print(f"running {arm} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{arm} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report(results, args)
