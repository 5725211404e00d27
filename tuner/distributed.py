"""What a training process needs to know when several train together (``accelerate launch``, torchrun).

Every process runs the same recipe; only the first (rank 0) clears the run folder and writes the
adapter. :func:`distributed_record` is what ``lorag.json`` says about the run: how many processes
trained, and how; :func:`start_device` where a run's model waits for its trainer. The launcher sets
``RANK`` and ``WORLD_SIZE``; a process started alone is rank 0 of 1. This module knows nothing about
recipes or data.
"""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True in the first process of a multi-process run, and in a process started alone."""
    return int(os.environ.get("RANK", "0")) == 0


def start_device() -> str:
    """Where a run's base model goes once loaded, before the trainer takes it (the base model's answers for replay
    and behaviour are generated there): the GPU where CUDA is and the process runs alone; else the CPU, and under a
    launcher (``WORLD_SIZE`` over 1) the trainer places each process's copy itself."""
    import torch

    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    return "cuda" if alone and torch.cuda.is_available() else "cpu"


def distributed_record(trainer) -> dict:
    """The world the trainer ran in: processes, accelerate's distributed type, backend, effective batch size."""
    args = trainer.args
    state = trainer.accelerator.state
    return {
        "world_size": args.world_size,
        "type": str(state.distributed_type).split(".")[-1],
        "backend": state.backend,
        "effective_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
    }
