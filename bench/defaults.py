"""Small-data fine-tuning on defaults: does a first fine-tune learn what it teaches, and nothing else?

Each task (``bench/defaults_tasks.py``) is a file of a few dozen rows and a recipe that names only
its method and dataset: every other setting is the tuner's ``auto`` policy. Each runs over several
seeds as a user runs it (``python -m tuner train``, in its own process), then the adapter and the
base model answer the held-out questions greedily. Reported per task, mean over seeds:

- hit rate: held-out answers that show what was taught (the fact, one word, a JSON object, a
  right answer) for the adapter and the base model;
- words: mean words per held-out answer (the preference tasks: adapter / base);
- drift: token F1 of the adapter's answers to held-out general prompts against the base model's,
  the figure the tuner writes to ``lorag.json`` (``behaviour.kept.f1_vs_base``; 1 is unchanged);
- training time: the whole ``python -m tuner train`` process, model load included.

    python bench/defaults.py [--tasks facts,one-word] [--seeds 42,1,2] [--set key=value ...]
                             [--out docs/results/defaults.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from defaults_tasks import Task, tasks

ROOT = Path(__file__).resolve().parents[1]


def train(task: Task, seed: int, overrides: list[str], model_dir: Path, work: Path, cache: Path) -> tuple[Path, float]:
    """Train ``task`` on defaults with ``seed``; the adapter folder and the seconds the process took."""
    folder = work / f"{task.name}-{seed}"
    folder.mkdir(parents=True)
    data = folder / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in task.rows))
    recipe = folder / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": task.name, "method": task.method, "dataset": str(data), "seed": seed}))
    command = [sys.executable, "-m", "tuner", "train", str(recipe), "--model-dir", str(model_dir), "--adapters-dir",
               str(folder / "adapters"), "--runs-dir", str(folder / "runs"), "--cache-dir", str(cache)]  # fmt: skip
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{task.name} seed {seed} failed:\n{done.stderr[-4000:]}")
    return folder / "adapters" / task.name, time.perf_counter() - started


def answers(model_dir: Path, adapter: Path | None, questions: list[str]) -> list[str]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuner.generation import greedy_answers

    tokenizer = AutoTokenizer.from_pretrained(adapter or model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    chats = [[{"role": "user", "content": q}] for q in questions]
    return [a.text for a in greedy_answers(model, tokenizer, chats, 64, desc="bench: held-out answers")]


def measure(task: Task, seeds: list[int], overrides: list[str], model_dir: Path, work: Path, cache: Path) -> dict:
    base = answers(model_dir, None, task.questions)
    runs = []
    for seed in seeds:
        adapter, seconds = train(task, seed, overrides, model_dir, work, cache)
        tuned = answers(model_dir, adapter, task.questions)
        manifest = json.loads((adapter / "lorag.json").read_text())
        runs.append({
            "seed": seed,
            "hits": sum(task.hit(a, i) for i, a in enumerate(tuned)),
            "words": statistics.mean(len(a.split()) for a in tuned),
            "drift_f1": manifest.get("behaviour", {}).get("kept", {}).get("f1_vs_base"),
            "seconds": seconds,
            "warnings": manifest.get("warnings", []),
            "auto": {k: v["value"] for k, v in manifest.get("auto", {}).items()},
            "answers": tuned,
        })  # fmt: skip
        print(f"{task.name} seed {seed}: {runs[-1]['hits']}/{len(tuned)} hits, {runs[-1]['words']:.1f} words, "
              f"drift F1 {runs[-1]['drift_f1']}, {seconds:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    return {
        "task": task.name, "method": task.method, "rows": len(task.rows), "questions": len(task.questions),
        "goal": task.goal, "base_hits": sum(task.hit(a, i) for i, a in enumerate(base)),
        "base_words": statistics.mean(len(a.split()) for a in base), "base_answers": base, "runs": runs,
    }  # fmt: skip


def report(results: list[dict], seeds: list[int], overrides: list[str], seconds: float) -> str:
    lines = [
        f"Seeds {', '.join(map(str, seeds))}; settings: defaults"
        + (f" with {' '.join('--set ' + o for o in overrides)}" if overrides else "")
        + f"; {seconds / 60:.1f} min in all.",
        "",
        "| task | method | rows | held-out hits, adapter (per seed) | base | words, adapter / base | "
        "drift F1 vs base | train s | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = r["questions"]
        hits = " / ".join(f"{run['hits']}/{n}" for run in r["runs"])
        words = statistics.mean(run["words"] for run in r["runs"])
        drifts = [run["drift_f1"] for run in r["runs"] if run["drift_f1"] is not None]
        drift = f"{statistics.mean(drifts):.2f}" if drifts else "-"
        train_s = statistics.mean(run["seconds"] for run in r["runs"])
        lines.append(
            f"| {r['task']} | {r['method']} | {r['rows']} | {hits} | {r['base_hits']}/{n} | "
            f"{words:.1f} / {r['base_words']:.1f} ({words / r['base_words']:.2f}x) | {drift} | {train_s:.0f} | "
            f"{r['goal']} |"
        )
    auto = results[0]["runs"][0]["auto"] if results and results[0]["runs"] else {}
    if auto:
        lines += ["", f"The `auto` choices of the first run ({results[0]['task']}): `{json.dumps(auto)}`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [t.name for t in tasks()]
    parser.add_argument("--tasks", default=",".join(names), help=f"of {', '.join(names)}")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe field for every task")
    parser.add_argument("--model-dir", type=Path, help="prepared base model (default: prepare the embedded one)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and every answer (.json) here")
    args = parser.parse_args()
    from gateway.settings import get_settings

    cache = get_settings().cache_dir.expanduser()  # the base model's replay answers, as `lorag finetune` keeps them
    if args.model_dir is None:
        from serve.models import prepare

        args.model_dir = prepare(get_settings().base_model, cache_dir=cache)
    known = {t.name: t for t in tasks()}
    unknown = [name for name in args.tasks.split(",") if name not in known]
    if unknown:
        parser.error(f"no task '{unknown[0]}'; the tasks are {', '.join(known)}")
    chosen = [known[name] for name in args.tasks.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="lorag-defaults-") as work:
        for task in chosen:
            results.append(measure(task, seeds, args.set, args.model_dir, Path(work), cache))
            table = report(results, seeds, args.set, time.perf_counter() - started)
            if args.out:  # after every task: a long run stopped early still leaves its table
                args.out.write_text(table)
                args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
