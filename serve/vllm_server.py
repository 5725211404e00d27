"""The machine-dependent parts of the vLLM server lorag starts: its dtype, its LoRA rank limit, a free port, and the
value a user's own arguments (``LORAG_VLLM_ARGS``) give a flag, which wins over lorag's. This module knows nothing
about HTTP or adapters."""

from __future__ import annotations

import socket


def default_dtype() -> str:
    """float32 on CPU, what the LocalEngine computes in (same greedy text); on a GPU, vLLM's own choice."""
    import torch

    return "auto" if torch.cuda.is_available() else "float32"


def default_max_rank(replicas: bool) -> int:
    """The largest LoRA rank served: 64 on a GPU or on running replicas (their own setting); 32 on a CPU, the most
    the tuner's ``auto`` policy chooses. vLLM's CPU LoRA ops copy every token's adapter weights padded to this rank,
    so there its cost grows with it (docs/results/serve_throughput.md)."""
    import torch

    return 64 if replicas or torch.cuda.is_available() else 32


def flag_value(args: list[str], flag: str) -> str | None:
    """The value ``args`` give ``flag`` (``--flag V`` or ``--flag=V``; the last one wins, as in vLLM's parser)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
