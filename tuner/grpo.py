"""GRPO: prompts -> generate, score, update with TRL's GRPOTrainer -> an adapter whose answers score higher.

Online RL, the step that follows a reward model in RLHF (or an AI judge's pairs, in RLAIF): for
each prompt the policy samples ``num_generations`` answers, the rewards score them, and each answer
is pushed up or down by how it compares with its group; TRL 1.x has no PPO, GRPO is its
generate-score-update loop. The rewards are lorag's named functions and/or a ``method: reward``
model (``tuner.rewards``), and/or an OpenAI grader (``graders``: reinforcement fine-tuning,
``tuner.grader_reward``), which reads the prompt's row as its ``item``. The rows are a JSONL of
``{"prompt": ...}`` (a string or chat messages) or of OpenAI's ``{"messages": [...]}`` ending with
the user's turn, with any extra fields a grader reads. With ``response_format`` every sample is JSON valid
against its schema (``tuner.structured``). Before training and after, the policy's
greedy answers to the held-out prompts are scored with the same rewards: ``reward_before`` and
``reward_after`` in ``lorag.json``; with ``eval_steps`` the held-out prompts are also scored while
training (TRL's ``eval_reward``). Every field of TRL's ``GRPOConfig`` can be set in the recipe.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe
from tuner.generation import greedy_answers
from tuner.grader_reward import ITEM_COLUMN, grader_reward
from tuner.manifest import file_sha256
from tuner.prompts import Prompt, read_prompts
from tuner.rewards import REWARD_FUNCTIONS, load_reward_model, model_reward
from tuner.training import TrainingError, callbacks, publish, split_held_out, start, train, trl_config


def run(recipe: Recipe, model_dir: Path, adapters_dir: Path, runs_dir: Path, cache_dir: Path | None = None) -> Path:
    from datasets import Dataset
    from trl import GRPOTrainer

    prompts, held_out, chosen = datasets(recipe)
    run = start(recipe, model_dir, runs_dir, [" ".join(m["content"] for m in p) for p, _ in prompts], chosen)
    recipe = run.recipe
    rewards = [REWARD_FUNCTIONS[name] for name in recipe.reward_functions]
    if recipe.reward_model:
        try:
            scorer = load_reward_model(Path(recipe.reward_model), run.model_dir, run.base["sha256"])
        except (OSError, ValueError) as e:
            raise TrainingError(f"reward_model: {e}") from None
        rewards.append(model_reward(scorer, run.tokenizer))
    if recipe.graders:
        rewards.append(grader_reward(recipe.graders, recipe.judge_base_url, recipe.grader_embedder,
                                     recipe.judge_api_key_file))  # fmt: skip
    if recipe.response_format:
        from tuner.structured import constrain

        constrain(run.model, run.tokenizer, recipe.response_format)  # TRL's samples and the held-out answers
    before = _mean_reward(run.model, run.tokenizer, held_out, rewards, recipe)
    evaluating = bool(held_out and recipe.trl("eval_steps"))
    trainer = GRPOTrainer(
        model=run.model,
        reward_funcs=rewards,
        args=trl_config(run, evaluating),
        train_dataset=_dataset(Dataset, prompts),
        eval_dataset=_dataset(Dataset, held_out) if evaluating else None,
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
        "rewards": {"functions": recipe.reward_functions, "model": recipe.reward_model, "graders": recipe.graders},
    }  # fmt: skip
    return publish(trainer, run, adapters_dir, metrics, record)


def _dataset(dataset_class, prompts: list[Prompt]):
    return dataset_class.from_list([{"prompt": messages, ITEM_COLUMN: item} for messages, item in prompts])


def datasets(recipe) -> tuple[list[Prompt], list[Prompt], dict]:
    """The training prompts, the held-out ones (``eval_dataset``, or a share: ``eval_fraction`` or ``auto``'s) and
    what ``auto`` chose in splitting them."""
    prompts = read_prompts(Path(recipe.dataset))
    if recipe.eval_dataset:
        return prompts, read_prompts(Path(recipe.eval_dataset)), {}
    return split_held_out(recipe, prompts, repr)


def _mean_reward(model, tokenizer, prompts: list[Prompt], rewards: list, recipe: Recipe) -> float | None:
    """The summed rewards of the model's greedy answers to ``prompts``, averaged; None without prompts."""
    if not prompts:
        return None
    chats = [messages for messages, _ in prompts]
    answers = greedy_answers(model, tokenizer, chats, recipe.trl("max_completion_length"), desc="grpo: held-out")
    completions = [[{"role": "assistant", "content": a.text}] for a in answers]
    items = {ITEM_COLUMN: [item for _, item in prompts]}
    totals = [sum(s) for s in zip(*(reward(chats, completions, **items) for reward in rewards), strict=True)]
    return sum(totals) / len(totals)
