"""GRPO: prompts -> generate, score, update with TRL's GRPOTrainer -> an adapter whose answers score higher.

Online RL, the step that follows a reward model in RLHF (or an AI judge's pairs, in RLAIF): for
each prompt the policy samples ``num_generations`` answers, the rewards (``tuner.rewards``: named
functions and/or a ``method: reward`` model) score them, and each answer is pushed up or down by
how it compares with its group; TRL 1.x has no PPO, GRPO is its generate-score-update loop. The
prompts are a JSONL of ``{"prompt": ...}`` (a string or chat messages). Before training and after,
the policy's greedy answers to the held-out prompts are scored with the same rewards:
``reward_before`` and ``reward_after`` in ``lorag.json``. Every field of TRL's ``GRPOConfig`` can
be set in the recipe.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.formats import DatasetError, openai_messages, read_records
from tuner.generation import greedy_answers
from tuner.manifest import file_sha256
from tuner.rewards import REWARD_FUNCTIONS, load_reward_model, model_reward
from tuner.training import TrainingError, callbacks, publish, split_held_out, start, train, trl_config


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    from datasets import Dataset
    from trl import GRPOTrainer

    prompts, held_out, chosen = datasets(recipe)
    run = start(recipe, model_dir, runs_dir, [" ".join(m["content"] for m in p) for p in prompts], chosen)
    recipe = run.recipe
    rewards = [REWARD_FUNCTIONS[name] for name in recipe.reward_functions]
    if recipe.reward_model:
        try:
            scorer = load_reward_model(Path(recipe.reward_model), run.model_dir, run.base["sha256"])
        except (OSError, ValueError) as e:
            raise TrainingError(f"reward_model: {e}") from None
        rewards.append(model_reward(scorer, run.tokenizer))
    before = _mean_reward(run.model, run.tokenizer, held_out, rewards, recipe)
    trainer = GRPOTrainer(
        model=run.model,
        reward_funcs=rewards,
        args=trl_config(run, False),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=run.tokenizer,
        peft_config=run.peft,
        callbacks=callbacks(recipe),
    )
    metrics = train(trainer, run)
    if held_out:
        metrics |= {"reward_before": before, "reward_after": _mean_reward(trainer.model, run.tokenizer, held_out,
                                                                         rewards, recipe)}  # fmt: skip
    record = {
        "dataset": {"path": recipe.dataset, "sha256": file_sha256(Path(recipe.dataset)),
                    "rows": {"train": len(prompts), "eval": len(held_out)}},
        "rewards": {"functions": recipe.reward_functions, "model": recipe.reward_model},
    }  # fmt: skip
    return publish(trainer, run, adapters_dir, metrics, record)


def datasets(recipe) -> tuple[list[list[dict]], list[list[dict]], dict]:
    """The training prompts, the held-out ones (``eval_dataset``, or a share: ``eval_fraction`` or ``auto``'s) and
    what ``auto`` chose in splitting them."""
    prompts = read_prompts(Path(recipe.dataset))
    if recipe.eval_dataset:
        return prompts, read_prompts(Path(recipe.eval_dataset)), {}
    return split_held_out(recipe, prompts, repr)


def read_prompts(path: Path) -> list[list[dict]]:
    """The prompts of a JSONL (or .json, .csv, .parquet) of ``{"prompt": str | messages}``, as chat messages."""
    out = []
    for where, row in read_records(path):
        prompt = row.get("prompt")
        if isinstance(prompt, str) and prompt.strip():
            out.append([{"role": "user", "content": prompt}])
        elif isinstance(prompt, list) and prompt:
            out.append(openai_messages(path, where, {"messages": prompt}))
        else:
            raise DatasetError(f"{path}:{where}: 'prompt' must be a non-empty string or list of messages")
    if not out:
        raise DatasetError(f"{path}: no rows")
    return out


def _mean_reward(model, tokenizer, prompts: list[list[dict]], rewards: list, recipe: Recipe) -> float | None:
    """The summed rewards of the model's greedy answers to ``prompts``, averaged; None without prompts."""
    if not prompts:
        return None
    answers = greedy_answers(model, tokenizer, prompts, recipe.trl("max_completion_length"), desc="grpo: held-out")
    completions = [[{"role": "assistant", "content": a.text}] for a in answers]
    totals = [sum(scores) for scores in zip(*(reward(prompts, completions) for reward in rewards), strict=True)]
    return sum(totals) / len(totals)
