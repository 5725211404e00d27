"""The ``auto`` policy: what it picks for given data and models (the table in docs/training.md), and that a value the
recipe gives always wins."""

import pytest

from tuner.auto import RULES, DataSize, ModelSize, apply, choose, held_out_share
from tuner.config import AUTO_FIELDS, Recipe, load_recipe

SMOLLM2 = ModelSize(width=576, context=8192)
LLAMA_7B = ModelSize(width=4096, context=4096)
FACTS = DataSize(rows=21, tokens=1_000, longest=40)


def values(recipe: Recipe, data: DataSize = FACTS, model: ModelSize = SMOLLM2) -> dict:
    return {field: choice.value for field, choice in choose(recipe, data, model).items()}


def sft(**fields) -> Recipe:
    return Recipe(name="a", dataset="d.jsonl", **fields)


@pytest.mark.parametrize(
    ("rows", "epochs"),
    [(5, 20.0), (8, 15.0), (21, 6.0), (24, 5.0), (40, 3.0), (1_000, 3.0), (10_000, 2.0), (100_000, 1.0)],
)
def test_small_sets_are_repeated_until_training_has_seen_120_rows_and_large_ones_get_fewer_epochs(rows, epochs):
    assert values(sft(), DataSize(rows, rows * 50, 60))["num_train_epochs"] == epochs


def test_preference_sets_are_repeated_until_160_pairs_and_grpo_samples_each_prompt_once():
    assert values(Recipe(name="a", method="dpo", dataset="p.jsonl"), DataSize(28, 2_000, 80))["num_train_epochs"] == 6
    assert (
        values(Recipe(name="a", method="grpo", dataset="p.jsonl", reward_functions=["brevity"]))["num_train_epochs"]
        == 1.0
    )


def test_the_learning_rate_scales_with_the_models_width_and_a_tenth_for_preferences():
    assert values(sft(), model=LLAMA_7B)["learning_rate"] == 2e-4  # QLoRA's rate for a 7B model
    assert values(sft(), model=ModelSize(1024, 4096))["learning_rate"] == 4e-4
    assert values(sft())["learning_rate"] == 5.3e-4  # 2e-4 x sqrt(4096/576)
    assert values(sft(), model=ModelSize(32, 512))["learning_rate"] == 1e-3  # 2.3e-3, capped
    assert values(Recipe(name="a", method="dpo", dataset="p.jsonl"))["learning_rate"] == 5.3e-5
    assert values(sft(peft_method="full"), model=LLAMA_7B)["learning_rate"] == 2e-5
    assert values(sft(peft_method="prompt_tuning"))["learning_rate"] == 3e-2
    assert values(sft(peft_method="ia3"))["learning_rate"] == 3e-3


def test_lora_rank_grows_with_the_training_tokens_and_alpha_is_twice_the_rank():
    assert (values(sft())["lora_r"], values(sft())["lora_alpha"]) == (8, 16)
    assert values(sft(), DataSize(5_000, 1_000_000, 300))["lora_r"] == 16
    assert values(sft(), DataSize(200_000, 50_000_000, 900))["lora_r"] == 32
    assert values(sft(lora_r=4))["lora_alpha"] == 8  # the rank given, doubled
    assert "lora_r" not in values(sft(peft_method="ia3"))


def test_dpo_adds_the_sft_loss_on_chosen_answers():
    assert values(Recipe(name="a", method="dpo", dataset="p.jsonl"))["loss_type"] == ["sigmoid", "sft"]
    assert "loss_type" not in values(Recipe(name="a", method="kto", dataset="p.jsonl"))


def test_replay_measures_drift_everywhere_and_trains_as_many_rows_as_the_data_for_chats():
    assert values(sft())["replay_prompts"] == "builtin" and values(sft())["replay_rows"] == 21
    assert values(sft(), DataSize(21, 1_000, 40, chats=False))["replay_rows"] == 0
    assert values(Recipe(name="a", method="kto", dataset="p.jsonl"))["replay_prompts"] == "builtin"
    assert "replay_rows" not in values(Recipe(name="a", method="kto", dataset="p.jsonl"))
    assert "replay_prompts" not in values(Recipe(name="a", method="reward", dataset="p.jsonl"))
    assert "replay_prompts" not in values(sft(replay_prompts=None))  # null: no replay, no drift check


def test_max_length_rises_only_for_rows_longer_than_the_default_and_stays_within_the_context():
    assert "max_length" not in values(sft())
    assert values(sft(), DataSize(10, 20_000, 1_500))["max_length"] == 1_536
    assert values(sft(), DataSize(10, 20_000, 9_000))["max_length"] == 8_192


def test_a_tenth_is_held_out_unless_the_recipe_says_otherwise():
    assert held_out_share(sft(), 24).value == 0.1
    assert held_out_share(sft(), 4).value == 0.0
    assert held_out_share(sft(eval_fraction=0), 24) is None
    assert held_out_share(sft(eval_dataset="e.jsonl"), 24) is None


def test_a_given_value_always_wins_and_auto_means_unset(tmp_path):
    given = sft(learning_rate=3e-4, num_train_epochs=2, lora_r=16, warmup_steps=0)
    assert not {"learning_rate", "num_train_epochs", "lora_r", "warmup_steps"} & set(values(given))
    assert values(given)["lora_alpha"] == 32
    path = tmp_path / "r.yaml"
    path.write_text("name: a\ndataset: d.jsonl\nlearning_rate: auto\nlora_r: auto\neval_fraction: auto\n")
    recipe = load_recipe(path)
    assert {"learning_rate", "lora_r"} <= set(values(recipe)) and held_out_share(recipe, 24).value == 0.1


def test_the_chosen_values_are_what_the_run_trains_with():
    recipe = sft(learning_rate_multiplier=2.0)
    resolved = apply(recipe, choose(recipe, FACTS, SMOLLM2))
    assert resolved.trl("learning_rate") == 5.3e-4 and resolved.trl("num_train_epochs") == 6.0
    assert (resolved.lora_r, resolved.lora_alpha, resolved.replay_rows) == (8, 16, 21)
    assert resolved.learning_rate_multiplier == 2.0 and recipe.trl_fields == {}


def test_every_field_the_recipe_leaves_to_auto_has_a_rule():
    assert set(AUTO_FIELDS) == set(RULES) | {"eval_fraction"}
