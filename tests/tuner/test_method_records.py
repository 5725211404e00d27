"""One record per training method (``tuner.methods``): the recipe, TRL's config, the checks and the trainers follow
from the records, and a record added shows up everywhere without another table to edit."""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing
from pathlib import Path

import pytest

from gateway.jobs import recipes as job_recipes
from gateway.jobs.extension import JobExtension
from tuner.checks import check_file
from tuner.config import ConfigError, Recipe, load_recipe
from tuner.methods import METHODS
from tuner.methods.record import Method
from tuner.trl_args import LORAG_DEFAULTS, SET_BY_LORAG, build_config, config_fields

PAIR = {"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."}
SCORED = {"grpo": {"reward_functions": ["brevity"]}}
"""What a method needs besides its name for a recipe to be valid."""


def recipe_text(method: str) -> str:
    return f"name: a\ndataset: d.jsonl\nmethod: {method}\n"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_record_names_a_trl_config_its_defaults_fit_and_a_trainer(name):
    method = METHODS[name]
    config = method.config_class()
    assert dataclasses.is_dataclass(config) and config.__module__.startswith("trl.")
    assert set(method.defaults) <= config_fields(name), "a default must be a field of its TRL config"
    assert callable(importlib.import_module(method.trainer).run)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_trl_config_starts_from_lorags_defaults_then_the_records(name):
    config = build_config(name, {}, Path("run"), 4, False, False, False)
    starting = {k: v for k, v in LORAG_DEFAULTS.items() if k in config_fields(name)} | dict(METHODS[name].defaults)
    assert not config.report_to  # TRL reads "none" as no reporters
    del starting["report_to"]
    assert {k: getattr(config, k) for k in starting} == starting


def test_a_recipe_takes_exactly_the_registered_methods(tmp_path):
    for name in METHODS:
        assert Recipe(name="a", dataset="d.jsonl", method=name, **SCORED.get(name, {})).method == name
    path = tmp_path / "r.yaml"
    path.write_text(recipe_text("ppo"))
    with pytest.raises(ConfigError) as error:
        load_recipe(path)
    *names, last = (repr(name) for name in METHODS)
    assert str(error.value) == f"{path}: method: Input should be {', '.join(names)} or {last}"


def test_a_record_added_shows_up_in_the_recipe_the_trl_config_and_the_checks(tmp_path, monkeypatch):
    fake = Method(name="fake", trl_config=("trl", "DPOConfig"), data="pairs", trainer="tuner.dpo",
                  defaults={"beta": 0.3})  # fmt: skip
    monkeypatch.setitem(METHODS, "fake", fake)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(PAIR) + "\n")
    path = tmp_path / "r.yaml"
    path.write_text(recipe_text("fake"))
    recipe = load_recipe(path)
    assert recipe.trl("beta") == 0.3 and recipe.trl("max_length") == LORAG_DEFAULTS["max_length"]
    assert build_config("fake", {}, Path("run"), 4, False, False, False).beta == 0.3
    assert "fake" in check_file(data)["methods"]
    with pytest.raises(ConfigError, match="'fake'"):
        load_recipe(path, ["method=ppo"])
    with pytest.raises(ConfigError, match="not data for method 'fake'"):
        load_recipe(path, ["dataset_format=openai"])


def test_lorag_sets_no_default_a_recipe_could_not_set():
    assert not SET_BY_LORAG & set(LORAG_DEFAULTS)
    assert not any(SET_BY_LORAG & set(method.defaults) for method in METHODS.values())


def test_the_gateways_wire_lists_agree_with_the_records():
    """The gateway never imports the tuner, so its job extension keeps its own list of methods: the same one."""
    extension = typing.get_args(JobExtension.model_fields["method"].annotation)[0]
    assert set(typing.get_args(extension)) == set(METHODS)
    assert set(job_recipes.METHODS.values()) <= set(METHODS)
    assert set(job_recipes.NOT_SERVABLE) & set(METHODS) == {n for n, m in METHODS.items() if m.scores}
