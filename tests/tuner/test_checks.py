"""``python -m tuner check``: data files and recipes checked without a model, as fine-tuning jobs use it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tuner.checks import check_file, check_recipe
from tuner.config import Recipe
from tuner.formats import DatasetError

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
PAIR = {"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."}
LABELLED = {"prompt": "Hi", "completion": "Hello.", "label": True}


def write(path, *rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.mark.parametrize(
    ("row", "found"),
    [(CHAT, ("openai", ["sft"])), (PAIR, ("preference", ["dpo", "orpo", "reward"])), (LABELLED, ("kto", ["kto"]))],
)
def test_a_file_is_read_whole_and_says_which_methods_train_on_it(tmp_path, row, found):
    result = check_file(write(tmp_path / "d.jsonl", row, row, row))
    assert (result["format"], result["methods"], result["rows"]) == (*found, 3)


def test_a_bad_row_is_named_by_its_line(tmp_path):
    with pytest.raises(DatasetError, match=r"d.jsonl:line 3: .*'rejected'"):
        check_file(write(tmp_path / "d.jsonl", PAIR, PAIR, {"prompt": "Hi", "chosen": "x", "rejected": 3}))


def test_a_recipe_reads_its_data_as_its_method_does(tmp_path):
    pairs = write(tmp_path / "pairs.jsonl", PAIR, PAIR, PAIR, PAIR)
    assert check_recipe(Recipe(name="a", method="dpo", dataset=pairs, eval_fraction=0.25))["rows"] == {
        "train": 3, "eval": 1,
    }  # fmt: skip
    with pytest.raises(DatasetError, match="labelled answers"):
        check_recipe(Recipe(name="a", method="kto", dataset=pairs))


def test_the_command_prints_one_json_line_or_one_error_line(tmp_path):
    good = subprocess.run([sys.executable, "-m", "tuner", "check", write(tmp_path / "c.jsonl", CHAT)],
                          capture_output=True, text=True)  # fmt: skip
    assert good.returncode == 0 and json.loads(good.stdout)["format"] == "openai"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: a\ndataset: {tmp_path / 'c.jsonl'}\nlora_rank: 4\n")
    bad = subprocess.run([sys.executable, "-m", "tuner", "check", "--recipe", str(recipe)],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "lora_rank" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
