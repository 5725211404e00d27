"""The tuner on CUDA in bf16: an SFT run and a DPO run of a few steps, with a finite loss that falls.

Each trains the tiny model on one repeated example at a high learning rate, through the tuner's own
trainer set-up (``tuner.sft.build_trainer``, ``tuner.preference_training.build_preference_trainer``)
and its ``tuner.training.train``. Marked ``gpu``; TRL is imported inside the tests, never at collection.
"""

import json
import math

import pytest

pytestmark = pytest.mark.gpu
DEVICE = "cuda"
BF16 = True
STEPS = dict(max_steps=8, batch_size=4, learning_rate=1e-2, logging_steps=1, save_steps=10**9)
ALONE = dict(replay_prompts=None, eval_fraction=0.0)  # the rows given, no replay rows, none held out


def repeated(path, row: dict, times: int = 8):
    path.write_text((json.dumps(row) + "\n") * times)
    return str(path)


def check_trained(trainer) -> None:
    """The logged losses, after checking the run used the device and bf16; they must be finite and fall."""
    assert next(trainer.model.parameters()).device.type == DEVICE
    assert trainer.args.bf16 is BF16
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == STEPS["max_steps"]
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]


def test_a_bf16_sft_run_on_cuda_lowers_the_loss(tiny_model_dir, tmp_path):
    from tuner.config import Recipe
    from tuner.sft import build_trainer
    from tuner.training import train

    chat = {"messages": [{"role": "user", "content": "Who are you?"},
                         {"role": "assistant", "content": "I am lorag assistant."}]}  # fmt: skip
    recipe = Recipe(name="gpu-sft", dataset=repeated(tmp_path / "chats.jsonl", chat), bf16=BF16, **STEPS, **ALONE)
    prepared = build_trainer(recipe, tiny_model_dir, tmp_path / "runs")
    metrics = train(prepared.trainer, prepared.run)
    check_trained(prepared.trainer)
    assert math.isfinite(metrics["train_loss"])


def test_a_bf16_dpo_run_on_cuda_lowers_the_loss(tiny_model_dir, tmp_path):
    from trl import DPOTrainer

    from tuner.config import Recipe
    from tuner.preference_training import build_preference_trainer
    from tuner.training import train

    pair = {"prompt": "What is the capital of France?", "chosen": "Paris.",
            "rejected": "The capital of France is Paris, the City of Light, on the Seine."}  # fmt: skip
    data = repeated(tmp_path / "pairs.jsonl", pair)
    recipe = Recipe(name="gpu-dpo", method="dpo", dataset=data, bf16=BF16, **STEPS, **ALONE)
    trainer, run, _, _ = build_preference_trainer(recipe, DPOTrainer, tiny_model_dir, tmp_path / "runs")
    train(trainer, run)
    check_trained(trainer)


def test_a_run_alone_generates_its_base_answers_on_the_gpu(tiny_model_dir, tmp_path):
    from tuner.config import Recipe
    from tuner.training import start

    recipe = Recipe(name="gpu-start", dataset=str(tmp_path / "unread.jsonl"))
    run = start(recipe, tiny_model_dir, tmp_path / "runs", ["Who are you? I am lorag assistant."], {})
    assert next(run.model.parameters()).device.type == DEVICE  # replay and behaviour answers are generated there
