"""The `lorag` command line as a user runs it: help, model preparation, fine-tuning, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LORAG = str(Path(sys.executable).parent / "lorag")


@pytest.fixture
def env(tmp_path):
    return os.environ | {
        "LORAG_CACHE_DIR": str(tmp_path / "cache"),
        "LORAG_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "LORAG_RUNS_DIR": str(tmp_path / "runs"),
        "HF_HUB_OFFLINE": "1",
    }


def lorag(*args, env):
    return subprocess.run([LORAG, *args], env=env, capture_output=True, text=True, timeout=600)


def test_help_lists_every_subcommand(env):
    out = lorag("--help", env=env)
    assert out.returncode == 0
    for command in ("model", "finetune"):
        assert command in out.stdout
    assert "prepare" in lorag("model", "--help", env=env).stdout


@pytest.mark.parametrize("model", ["no-such-org/no-such-model", "/no/such/folder"])
def test_an_unreachable_model_is_a_one_line_error(env, model):
    out = lorag("model", "prepare", "--model", model, env=env)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"error: cannot load model '{model}'" in errors[0]
    assert "Traceback" not in out.stderr


def test_prepare_a_local_model_is_idempotent(env, tiny_raw_dir):
    first = lorag("model", "prepare", "--model", str(tiny_raw_dir), env=env)
    assert first.returncode == 0, first.stderr
    folder = Path(first.stdout.strip().splitlines()[-1])
    manifest = json.loads((folder / "lorag-model.json").read_text())
    assert manifest["id"] == str(tiny_raw_dir) and len(manifest["sha256"]) == 64
    again = lorag("model", "prepare", "--model", str(tiny_raw_dir), env=env)
    assert again.stdout.strip().splitlines()[-1] == str(folder)
    assert json.loads((folder / "lorag-model.json").read_text())["created"] == manifest["created"]


def write_recipe(tmp_path, model, rows):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: cli-tiny\nmodel: {model}\ndataset: train.jsonl\nmax_steps: 2\nbatch_size: 2\n")
    return recipe


def test_finetune_writes_an_adapter_and_refuses_to_overwrite_it(env, tmp_path, tiny_raw_dir):
    row = {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "lorag"}]}
    recipe = write_recipe(tmp_path, tiny_raw_dir, [row] * 4)
    out = lorag("finetune", str(recipe), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    manifest = json.loads((tmp_path / "adapters" / "cli-tiny" / "lorag.json").read_text())
    assert manifest["base_model"]["id"] == str(tiny_raw_dir)
    again = lorag("finetune", str(recipe), env=env)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("error: adapter 'cli-tiny' already exists")


def test_finetune_names_the_file_and_line_of_a_malformed_row(env, tmp_path, tiny_raw_dir):
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    bad = {"messages": [{"role": "user", "content": "Hi"}]}
    recipe = write_recipe(tmp_path, tiny_raw_dir, [good, good, bad])
    out = lorag("finetune", str(recipe), env=env)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "train.jsonl:line 3" in last and "Traceback" not in out.stderr


def test_finetune_reports_a_missing_recipe(env, tmp_path):
    out = lorag("finetune", str(tmp_path / "nope.yaml"), env=env)
    assert out.returncode == 1 and "error: cannot read recipe" in out.stderr
