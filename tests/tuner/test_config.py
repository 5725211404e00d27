"""Recipes: every shipped YAML parses and its data loads; overrides and mistakes behave."""

from pathlib import Path

import pytest

from tuner.checks import check_recipe
from tuner.config import ConfigError, load_recipe

CONFIGS = sorted((Path(__file__).parents[2] / "tuner" / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_parses_and_its_data_loads(path):
    recipe = load_recipe(path)
    rows = check_recipe(recipe)["rows"]  # read as its method reads it
    assert rows["train"] > 0 and (rows["eval"] > 0 or not recipe.eval_dataset)


def test_set_overrides_parse_values_as_yaml_and_paths_from_the_working_directory(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: a\ndataset: data/train.jsonl\n")
    recipe = load_recipe(path, ["lora_r=16", "use_dora=true", "target_modules=[q_proj, v_proj]", "dataset=x.jsonl"])
    assert (recipe.lora_r, recipe.use_dora, recipe.target_modules) == (16, True, ["q_proj", "v_proj"])
    assert recipe.dataset == "x.jsonl"
    assert load_recipe(path).dataset == str(tmp_path / "data" / "train.jsonl")


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("name: a\ndataset: d.jsonl\nlora_rank: 8\n", [], "unknown field .lora_rank.: neither a lorag recipe field"),
        ("name: a\ndataset: d.jsonl\n", ["lora_r=many"], "lora_r: Input should be a valid integer"),
        ("name: a@kb\ndataset: d.jsonl\n", [], "name: Value error"),
        ("name: a\n", [], "dataset: Field required"),
        ("name: a\ndataset: d.jsonl\n", ["lora_r"], "--set takes key=value"),
        ("name: a\ndataset: d.jsonl\n", ["peft_method=qlora"], "peft_method: Input should be 'lora', 'dora'"),
        (
            "name: a\ndataset: d.jsonl\n",
            ["num_virtual_tokens=0"],
            "num_virtual_tokens: Value error, must be at least 1",
        ),
        ("name: a\ndataset: d.jsonl\n", ["learning_rate=fast"], "learning_rate: Input should be a valid number"),
        ("name: a\ndataset: d.jsonl\nmethod: sft\n", ["beta=0.2"], "unknown field 'beta': .* TRL's SFTConfig"),
        ("name: a\ndataset: d.jsonl\nmethod: dpo\n", ["dataset_format=alpaca"], "not data for method 'dpo'"),
        ("- not\n- a mapping\n", [], "must be a mapping"),
        ("name: [unclosed\n", [], "not valid YAML"),
    ],
)
def test_bad_recipes_give_one_line_errors(tmp_path, text, overrides, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_recipe(path, overrides)
    assert "\n" not in str(e.value)


def test_trl_fields_ride_along_and_are_validated_by_trl(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: a\nmethod: dpo\ndataset: d.jsonl\nbeta: 0.25\nloss_type: [ipo]\n")
    recipe = load_recipe(path, ["max_steps=3"])
    assert recipe.trl_fields == {"beta": 0.25, "loss_type": ["ipo"], "max_steps": 3}
    assert (recipe.trl("beta"), recipe.trl("max_length")) == (0.25, 1024)
    with pytest.raises(ConfigError, match="beta: Input should be a valid number"):
        load_recipe(path, ["beta=strong"])


def test_a_trl_field_given_as_text_takes_trls_type(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: a\ndataset: d.jsonl\n")
    recipe = load_recipe(path, ["learning_rate=3e-4"])  # YAML 1.1 reads 3e-4 as a string
    assert recipe.trl("learning_rate") == 3e-4 and isinstance(recipe.trl_fields["learning_rate"], float)
