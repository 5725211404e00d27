"""DPO throughput: lorag's `method: dpo` path against plain TRL DPOTrainer with its default settings, in one run.

Same base model (lorag's base model, by default the embedded SmolLM2-135M-Instruct, unless
--model-dir), same pairs (tuner/data/brevity/trimmed-pairs.jsonl, the DPO demo's),
same LoRA (r=8, alpha=16, all linear layers), same batch size and step count. Each arm runs in its
own process so its peak memory is its own. Throughput is preference pairs per second over the timed
steps, after warm-up steps.

Arms:
  trl     DPOTrainer(DPOConfig()) with TRL's defaults (gradient checkpointing on), except bf16=False on
          CPU: TRL's bf16 default refuses to start on a CPU without bf16 support
  lorag   `method: dpo` as `lorag finetune` runs it

Where CUDA is, both arms train in bf16 and the memory compared is the GPU's peak allocation.

    python bench/dpo_throughput.py [--steps 6] [--warmup 2] [--batch 4] [--arms lorag,trl]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training_arms import SAME_ROWS, memory_column, peak_memory, run_arms, timed_train, trl_precision

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tuner" / "data" / "brevity" / "trimmed-pairs.jsonl"
STEPS = 6
ARMS = ["trl", "lorag"]
BATCH, RANK, ALPHA = 4, 8, 16


def trl_trainer(model_dir: Path, steps: int, out: Path, batch: int = BATCH):
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, logging_steps=1,
                     save_strategy="no", report_to="none", **trl_precision())  # fmt: skip
    return DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=load_dataset("json", data_files=str(DATA), split="train"),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules="all-linear", task_type="CAUSAL_LM"),
    )


def lorag_trainer(model_dir: Path, steps: int, out: Path, batch: int = BATCH):
    from trl import DPOTrainer

    from tuner.config import Recipe
    from tuner.preference_training import build_preference_trainer

    recipe = Recipe(name="bench", method="dpo", dataset=str(DATA), max_steps=steps, batch_size=batch, lora_r=RANK,
                    lora_alpha=ALPHA, logging_steps=1, save_steps=10**9,
                    **SAME_ROWS)  # fmt: skip
    return build_preference_trainer(recipe, DPOTrainer, model_dir, out)[0]


def measure(arm: str, model_dir: Path, steps: int, warmup: int, batch: int = BATCH) -> dict:
    """Train one arm in this process; pairs/s over the steps after ``warmup``."""
    with tempfile.TemporaryDirectory() as out:
        trainer = (trl_trainer if arm == "trl" else lorag_trainer)(model_dir, warmup + steps, Path(out), batch)
        seconds = timed_train(trainer, warmup)
    return {
        "arm": arm,
        "pairs_per_s": steps * batch / seconds,
        "s_per_step": seconds / steps,
        "bf16": bool(trainer.args.bf16),
    } | peak_memory()


def report(results: list[dict], args) -> None:
    peer = next((r for r in results if r["arm"] == "trl"), results[0])
    memory, label = memory_column(results)
    print(f"\nDPO throughput, {args.steps} steps, batch {args.batch}, LoRA r={RANK} all-linear,", args.model_dir.name)
    header = ("arm", "pairs/s", "s/step", label, "speed vs peer", "memory vs peer")
    print("{:<8} {:>8} {:>7} {:>13} {:>14} {:>15}".format(*header))
    for r in results:
        print(
            f"{r['arm']:<8} {r['pairs_per_s']:>8.2f} {r['s_per_step']:>7.2f} {r[memory]:>13.2f} "
            f"{r['pairs_per_s'] / peer['pairs_per_s']:>13.2f}x {r[memory] / peer[memory]:>14.2f}x"
        )
    print(f"(peer: {peer['arm']})")


if __name__ == "__main__":
    run_arms(__file__, __doc__, ARMS, measure, report, STEPS, BATCH)
