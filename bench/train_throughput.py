"""SFT throughput: lorag's path against plain TRL SFTTrainer with default settings, in one run.

Same base model (lorag's base model, by default the embedded SmolLM2-135M-Instruct, unless
--model-dir), same data (the demo identity set), same LoRA (r=8, alpha=16, all linear layers),
same batch size and step count.
Each arm runs in its own process so its peak memory (max RSS) is its own. Throughput is the
training tokens TRL counts (``num_tokens``) over the timed steps, after warm-up steps.

Arms:
  trl                     SFTTrainer(SFTConfig()) with TRL's defaults (gradient checkpointing on,
                          loss on every token, full-vocabulary scoring at every position on CPU),
                          except bf16=False on CPU: TRL's bf16 default refuses to start on a CPU
                          without bf16 support ("Your setup doesn't support bf16/gpu")
  trl-no-gc               the same with gradient checkpointing off
  lorag-full-vocab        lorag's recipe with compact_lm_head=False
  lorag                   lorag's recipe as `lorag finetune` runs it

Where CUDA is, both arms train in bf16 (TRL's default; lorag's recipe turns bf16 on there) and the
memory compared is the GPU's peak allocation; bench/gpu_check.sh runs it so.

    python bench/train_throughput.py [--steps 8] [--warmup 2] [--batch 4] [--arms lorag,trl]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training_arms import SAME_ROWS, memory_column, peak_memory, run_arms, timed_train, trl_precision

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tuner" / "data" / "lorag-identity" / "train.jsonl"
STEPS = 8
ARMS = ["trl", "trl-no-gc", "lorag-full-vocab", "lorag"]
BATCH, RANK, ALPHA = 4, 8, 16


def trl_trainer(arm: str, model_dir: Path, steps: int, out: Path, batch: int = BATCH):
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    overrides = {"trl": trl_precision(), "trl-no-gc": trl_precision() | {"gradient_checkpointing": False}}
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        **overrides[arm],
    )
    return SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=load_dataset("json", data_files=str(DATA), split="train"),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules="all-linear", task_type="CAUSAL_LM"),
    )


def lorag_trainer(arm: str, model_dir: Path, steps: int, out: Path, batch: int = BATCH):
    from tuner.config import Recipe
    from tuner.sft import build_trainer

    recipe = Recipe(
        name="bench",
        dataset=str(DATA),
        max_steps=steps,
        batch_size=batch,
        lora_r=RANK,
        lora_alpha=ALPHA,
        logging_steps=1,
        save_steps=10**9,
        compact_lm_head=arm == "lorag",
        **SAME_ROWS,
    )
    return build_trainer(recipe, model_dir, out).trainer


def measure(arm: str, model_dir: Path, steps: int, warmup: int, batch: int = BATCH) -> dict:
    """Train one arm in this process; tokens/s over the steps after ``warmup``."""
    with tempfile.TemporaryDirectory() as out:
        build = trl_trainer if arm.startswith("trl") else lorag_trainer
        trainer = build(arm, model_dir, warmup + steps, Path(out), batch)
        seconds = timed_train(trainer, warmup)
    tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "arm": arm,
        "tokens_per_s": (tokens[-1] - tokens[warmup - 1]) / seconds,
        "s_per_step": seconds / steps,
        "first_loss": losses[0],
        "bf16": bool(trainer.args.bf16),
        "weights_dtype": str(next(trainer.model.parameters()).dtype).removeprefix("torch."),
    } | peak_memory()


def report(results: list[dict], args) -> None:
    peer = next((r for r in results if r["arm"] == "trl"), results[0])
    memory, label = memory_column(results)
    print(f"\nSFT throughput, {args.steps} steps, batch {args.batch}, LoRA r={RANK} all-linear,", args.model_dir.name)
    header = ("arm", "tokens/s", "s/step", label, "speed vs peer", "memory vs peer")
    print("{:<18} {:>9} {:>7} {:>13} {:>14} {:>15}".format(*header))
    for r in results:
        print(
            f"{r['arm']:<18} {r['tokens_per_s']:>9.1f} {r['s_per_step']:>7.2f} {r[memory]:>13.2f} "
            f"{r['tokens_per_s'] / peer['tokens_per_s']:>13.2f}x {r[memory] / peer[memory]:>14.2f}x"
        )
    print(f"(peer: {peer['arm']})")


if __name__ == "__main__":
    run_arms(__file__, __doc__, ARMS, measure, report, STEPS, BATCH)
