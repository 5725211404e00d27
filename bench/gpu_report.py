"""The GPU check's figures as Markdown: every figure beside its ratio to the peer measured in the same run.

Takes the results dictionary ``bench/gpu_figures.py`` writes (``gpu_results.json``) and renders
the serving table (4 mixed adapters against the base model, per shape and concurrency), the SFT
and DPO tables (lorag against plain TRL, speed and peak GPU memory), and what was skipped or
failed and why. Pure Python: no torch, nothing measured here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PEER = "trl"
MIXED = "4 mixed adapters"


def ratio(value: float, peer: float) -> str:
    """``value / peer`` as ``1.23x``; ``n/a`` without a peer value."""
    return f"{value / peer:.2f}x" if peer else "n/a"


def serving_table(serving: dict) -> list[str]:
    """Tokens/s of the base model and of 4 mixed adapters at each concurrency, and adapters / base, per shape."""
    lines = [
        "| shape | concurrent requests | base tokens/s | 4 mixed adapters tokens/s | adapters vs base |",
        "|---|---|---|---|---|",
    ]
    for shape, found in serving.items():
        cells = {(r["workload"], r["concurrency"]): r for r in found["rows"]}
        for concurrency in sorted({c for _, c in cells}):
            base, mixed = cells.get(("base", concurrency)), cells.get((MIXED, concurrency))
            base_value = base["tokens_per_s"] if base else 0.0
            mixed_value = mixed["tokens_per_s"] if mixed else 0.0
            lines.append(
                f"| {shape} | {concurrency} | {base_value:.1f} | {mixed_value:.1f} | {ratio(mixed_value, base_value)} |"
            )
    return lines


def training_table(runs: dict, unit: str, key: str) -> list[str]:
    """Per shape, each arm's throughput (``key``, in ``unit``), seconds per step and peak memory (the GPU's where
    every arm measured it, else the process's RSS), with its ratio to plain TRL's in the same run."""
    gpu = all("peak_gpu_gib" in arm for arms in runs.values() for arm in arms)
    memory_key = "peak_gpu_gib" if gpu else "peak_rss_gib"
    lines = [
        f"| shape | arm | {unit} | s/step | peak {'GPU' if gpu else 'RSS'} GiB | bf16 | speed vs TRL | memory vs TRL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape, arms in runs.items():
        peer = next((a for a in arms if a["arm"] == PEER), None)
        for arm in arms:
            memory = arm[memory_key]
            peer_memory = peer[memory_key] if peer else 0.0
            lines.append(
                f"| {shape} | {arm['arm']} | {arm[key]:.1f} | {arm['s_per_step']:.3f} | {memory:.2f} | "
                f"{'yes' if arm.get('bf16') else 'no'} | {ratio(arm[key], peer[key] if peer else 0.0)} | "
                f"{ratio(memory, peer_memory)} |"
            )
    return lines


def markdown(results: dict) -> str:
    """The whole report: what ran where, then each table present, then what was skipped or failed."""
    settings = results.get("settings", {})
    lines = [
        "# GPU check: lorag on an accelerator",
        "",
        f"Device: {results.get('device', 'unknown')}; started {results.get('started', '?')}; "
        f"budget {results.get('budget_s', '?')} s.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items()) + ".",
        "Models: random weights from the shapes' configs (bench/gpu_models.py), fixed seed; "
        "parameters: " + ", ".join(f"{k} {v / 1e6:,.1f}M" for k, v in results.get("parameters", {}).items()) + ".",
        "",
    ]
    if results.get("serving"):
        lines += [
            "## LocalEngine: output tokens/s, base model against 4 mixed adapters",
            "",
            f"Greedy, {settings.get('max_tokens')} tokens per request (end of sequence ignored), weights in "
            f"{settings.get('dtype')}, LoRA r=8 on every linear layer, max_batch {settings.get('max_batch')}; "
            "the base model is measured before any adapter is loaded.",
            "",
            *serving_table(results["serving"]),
            "",
        ]
    for method, unit, key in (("sft", "tokens/s", "tokens_per_s"), ("dpo", "pairs/s", "pairs_per_s")):
        if results.get(method):
            train = settings.get("train", {})
            lines += [
                f"## {method.upper()}: lorag against plain TRL",
                "",
                f"{train.get('steps')} timed steps after {train.get('warmup')} warm-up, batch "
                f"{train.get(method + '_batch')}, LoRA r=8 all-linear, each arm in its own process; "
                f"bench/{'train' if method == 'sft' else 'dpo'}_throughput.py's arms.",
                "",
                *training_table(results[method], unit, key),
                "",
            ]
    for kind in ("skipped", "failed"):
        if results.get(kind):
            lines += [f"## {kind.capitalize()}", ""]
            lines += [f"- {entry['stage']}: {entry['reason']}" for entry in results[kind]]
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Render a gpu_results.json as Markdown.")
    parser.add_argument("results", type=Path)
    print(markdown(json.loads(parser.parse_args().results.read_text())))
