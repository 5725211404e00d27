"""The GPU check's figures, in one run, within a deadline: serving and training, each against a peer of that run.

Stages, in this order (the most wanted first), each skipped with a line saying so when its estimated
time no longer fits before ``--deadline``:

1. LocalEngine output tokens/s on the embedded shape, then the 1B shape: the base model (no adapter
   loaded) against 4 random LoRAs mixed in every batch, at 1, 8 and 32 concurrent requests
   (``bench/serve_throughput.py``'s request loop; every request generates exactly ``--max-tokens``).
2. SFT tokens/s and peak GPU memory, lorag against plain TRL, then DPO pairs/s: the arms of
   ``bench/train_throughput.py`` and ``bench/dpo_throughput.py``, each in its own process, on the 1B
   shape, then the embedded shape.
3. The 8B shape's serving figures, when time is left.

Models are random-weight shapes (``bench/gpu_models.py``). After each stage the results so far go to
``--out`` (``gpu_results.json`` and ``gpu_results.md``), so a run cut short still leaves what it
measured. ``bench/gpu_check.sh`` runs this; ``--device cpu --shapes tiny`` tries it on a CPU.

    python bench/gpu_figures.py --out DIR [--deadline EPOCH_S] [--shapes embedded,llama-1b,llama-8b]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import gpu_models
import gpu_report
from serve_throughput import timed_requests
from training_arms import arm_in_child

BENCH = Path(__file__).resolve().parent
CONCURRENCY = (1, 8, 32)
WORKLOADS = ("base", gpu_report.MIXED)
BUILD_S = {"embedded": 15, "llama-1b": 30, "llama-8b": 100, "tiny": 5}
STAGE_S = {
    ("serve", "embedded"): 50, ("serve", "llama-1b"): 60, ("serve", "llama-8b"): 90, ("serve", "tiny"): 20,
    ("sft", "embedded"): 50, ("sft", "llama-1b"): 70, ("sft", "tiny"): 40,
    ("dpo", "embedded"): 50, ("dpo", "llama-1b"): 70, ("dpo", "tiny"): 40,
}  # fmt: skip
"""Estimated seconds per stage on an H100 (a guess until a run measures them: each stage's ``seconds`` in the
results); a shape's build is added to its first stage."""
PLAN = [("serve", "embedded"), ("serve", "llama-1b"), ("sft", "llama-1b"), ("dpo", "llama-1b"),
        ("sft", "embedded"), ("dpo", "embedded"), ("serve", "llama-8b"),
        ("serve", "tiny"), ("sft", "tiny"), ("dpo", "tiny")]  # fmt: skip
SCRIPTS = {"sft": ("train_throughput.py", "tokens_per_s"), "dpo": ("dpo_throughput.py", "pairs_per_s")}


async def serve_figures(model_dir: Path, specs: list, device: str, dtype: str, max_tokens: int, rows: list) -> None:
    """Tokens/s of each workload at each concurrency on one LocalEngine, the base model first, then the adapters:
    appended to ``rows`` as measured, so a failure keeps what came before it."""
    from serve.local_engine import LocalEngine

    engine = LocalEngine(model_dir, "bench", max_batch=max(CONCURRENCY), device=device, dtype=dtype)
    names = [spec.name for spec in specs]
    try:
        for workload, adapters in zip(WORKLOADS, ([None], names), strict=True):
            if adapters != [None]:
                for spec in specs:
                    await engine.load_adapter(spec)
            await timed_requests(engine, adapters, max(CONCURRENCY), 4, max(CONCURRENCY))  # warm-up, largest batch
            for concurrency in CONCURRENCY:
                requests = max(4, 2 * concurrency)
                engine.batch_sizes.clear()
                tokens, seconds = await timed_requests(engine, adapters, concurrency, max_tokens, requests)
                rows.append({"workload": workload, "concurrency": concurrency, "requests": requests,
                             "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
                             "batch_sizes": list(engine.batch_sizes),
                             "every_request_ran_to_max_tokens": tokens == requests * max_tokens})  # fmt: skip
                print(f"  {workload:<17} x{concurrency:<3} {tokens / seconds:9.1f} tokens/s", flush=True)
    finally:
        await engine.close()


def train_figures(method: str, model_dir: Path, steps: int, warmup: int, batch: int, arms: list) -> None:
    """Plain TRL's arm, then lorag's, of ``method``'s benchmark script, each in its own process; appended to
    ``arms`` as measured."""
    script = str(BENCH / SCRIPTS[method][0])
    for arm in ("trl", "lorag"):
        arms.append(arm_in_child(script, arm, model_dir, steps, warmup, batch))
        print(f"  {arm:<6} {arms[-1][SCRIPTS[method][1]]:9.1f} {SCRIPTS[method][1]}", flush=True)


def environment(device: str) -> tuple[str, dict]:
    """The device's name and the versions of what the figures depend on."""
    import torch

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU (no GPU)"
    versions = {"torch": torch.__version__}
    for package in ("transformers", "peft", "accelerate", "trl", "datasets"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "missing"
    return name, versions


def free_device_memory() -> None:
    """Drop what the last stage left, so the next stage (or a child process) has the GPU's memory."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Run:
    """The results so far, written to ``out`` after every stage."""

    def __init__(self, args, device_name: str, versions: dict):
        self.args = args
        self.results = {
            "device": device_name, "versions": versions, "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "budget_s": round(args.deadline - time.time()), "parameters": {},
            "settings": {"max_tokens": args.max_tokens, "concurrency": list(CONCURRENCY), "dtype": args.dtype,
                         "max_batch": max(CONCURRENCY), "device": args.device,
                         "train": {"steps": args.steps, "warmup": args.warmup, "sft_batch": args.sft_batch,
                                   "dpo_batch": args.dpo_batch}},
            "serving": {}, "sft": {}, "dpo": {}, "skipped": [], "failed": [], "seconds": {},
        }  # fmt: skip
        self.built: dict[str, tuple[Path, list]] = {}

    def write(self) -> None:
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_results.json").write_text(json.dumps(self.results, indent=2) + "\n")
        (out / "gpu_results.md").write_text(gpu_report.markdown(self.results))

    def stage(self, kind: str, shape: str) -> None:
        """Run one stage if its estimate fits before the deadline; record its figures, or why there are none."""
        name = f"{kind} {shape}"
        needed = STAGE_S[(kind, shape)] + (0 if shape in self.built else BUILD_S[shape])
        left = self.args.deadline - time.time()
        if needed > left:
            reason = f"needs about {needed} s, {max(0, round(left))} s of the budget left"
            self.results["skipped"].append({"stage": name, "reason": reason})
            print(f"skipped {name}: {reason}", flush=True)
            return
        print(f"{name} ...", flush=True)
        started = time.time()
        try:
            if shape not in self.built:
                self.built[shape] = gpu_models.build(shape, self.args.work, self.args.device)
                self.results["parameters"][shape] = gpu_models.parameters(shape)
                free_device_memory()
            model_dir, specs = self.built[shape]
            if kind == "serve":
                rows = self.results["serving"].setdefault(shape, {"rows": []})["rows"]
                asyncio.run(
                    serve_figures(model_dir, specs, self.args.device, self.args.dtype, self.args.max_tokens, rows)
                )
            else:
                batch = self.args.sft_batch if kind == "sft" else self.args.dpo_batch
                arms = self.results[kind].setdefault(shape, [])
                train_figures(kind, model_dir, self.args.steps, self.args.warmup, batch, arms)
        except Exception as e:  # one stage failing must not lose the others' figures
            traceback.print_exc()
            self.results["failed"].append({"stage": name, "reason": f"{type(e).__name__}: {str(e)[-1500:]}"})
        finally:
            free_device_memory()
        self.results["seconds"][name] = round(time.time() - started, 1)
        self.write()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_results.json and gpu_results.md")
    parser.add_argument("--work", type=Path, help="folder for the models (default: a temporary one)")
    parser.add_argument("--deadline", type=float, help="Unix time by which to be done (default: 7 minutes from now)")
    parser.add_argument("--shapes", default="embedded,llama-1b,llama-8b", help=f"of {', '.join(gpu_models.SHAPES)}")
    parser.add_argument("--parts", default="serve,sft,dpo")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", help="the LocalEngine's weights (default: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per arm")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sft-batch", type=int, default=16)
    parser.add_argument("--dpo-batch", type=int, default=8)
    args = parser.parse_args()
    if unknown := set(args.shapes.split(",")) - set(gpu_models.SHAPES):
        parser.error(f"unknown shape {sorted(unknown)[0]}; choose from {', '.join(gpu_models.SHAPES)}")
    args.deadline = args.deadline or time.time() + 420
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_figures: needs CUDA (torch sees no GPU); --device cpu tries it on a CPU")
        return 0
    with tempfile.TemporaryDirectory(prefix="lorag-gpu-") as tmp:
        args.work = args.work or Path(tmp)
        run = Run(args, *environment(args.device))
        for kind, shape in PLAN:
            if shape in args.shapes.split(",") and kind in args.parts.split(","):
                run.stage(kind, shape)
        run.write()
    print("\n" + gpu_report.markdown(run.results), flush=True)
    return 1 if run.results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
