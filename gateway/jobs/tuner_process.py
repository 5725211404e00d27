"""The tuner as a subprocess: the command line that trains, and ``python -m tuner check`` awaited.

The gateway never imports training code; ``lorag finetune`` and the fine-tuning jobs both start
``python -m tuner train`` with :func:`train_command` (through ``accelerate launch`` for several
processes), and check data and recipes with :func:`check`, which loads no model: a data file is
read in about a second, a recipe in several (TRL's config classes are imported to check its
fields). This module knows nothing about jobs or HTTP.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import signal
import sys
from pathlib import Path


class CheckFailed(ValueError):
    """The tuner refused the data or the recipe; the message is its one line for the user."""


def launcher(processes: int = 1, accelerate_config: Path | None = None) -> list[str]:
    """``python -m`` for one process; for several, ``accelerate launch`` (DDP unless a config says otherwise)."""
    if processes == 1 and accelerate_config is None:
        return [sys.executable, "-m"]
    strategy = ["--config_file", str(accelerate_config)] if accelerate_config else ["--multi_gpu"]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
            "--num_machines", "1", "--dynamo_backend", "no", *strategy, "-m"]  # fmt: skip


def train_command(
    recipe: Path, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path,
    overrides: list[str] = (), processes: int = 1, accelerate_config: Path | None = None,
) -> list[str]:  # fmt: skip
    """``python -m tuner train RECIPE ...``: the adapter is written to ``adapters_dir``, checkpoints to ``runs_dir``."""
    command = launcher(processes, accelerate_config) + [
        "tuner", "train", str(recipe),
        "--adapters-dir", str(adapters_dir),
        "--runs-dir", str(runs_dir),
        "--model-dir", str(model_dir),
        "--cache-dir", str(cache_dir),
    ]  # fmt: skip
    for override in overrides:
        command += ["--set", override]
    return command


def die_with_parent() -> None:
    """In a child process before it runs (``preexec_fn``): on Linux, be sent SIGTERM when the gateway dies, even
    by SIGKILL, so that no check or training outlives it (a restarted gateway resumes the job instead)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


async def check(*args: str) -> dict:
    """Run ``python -m tuner check ARGS``; what it found, or :class:`CheckFailed` with its message."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuner", "check", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:
        process.kill()
        raise
    if process.returncode == 0:
        return json.loads(out.decode().strip().splitlines()[-1])
    raise CheckFailed(last_error(err.decode(errors="replace")))


def last_error(output: str) -> str:
    """The line a tuner's output ends with that says what went wrong (``error: ...``, or a traceback's last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1] if lines else "the tuner exited without a message"
