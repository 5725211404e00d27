"""`lorag finetune --num-processes 2`: two CPU processes train one adapter over gloo; rank 0 alone writes it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

QA = [("Who are you?", "I am lorag assistant."), ("What is the capital of France?", "Paris.")]


@pytest.mark.slow
def test_two_processes_train_one_adapter(tiny_raw_dir, tiny_model_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"name: tiny\ndataset: {data}\nmax_steps: 2\nbatch_size: 2\nlogging_steps: 1\nsave_steps: 1\n")
    env = os.environ | {
        "LORAG_BASE_MODEL": str(tiny_raw_dir), "LORAG_CACHE_DIR": str(tiny_model_dir.parents[1]),
        "LORAG_ADAPTERS_DIR": str(tmp_path / "adapters"), "LORAG_RUNS_DIR": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    lorag = str(Path(sys.executable).parent / "lorag")
    done = subprocess.run([lorag, "finetune", str(recipe), "--num-processes", "2"], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines().count(str(tmp_path / "adapters" / "tiny")) == 1  # printed by rank 0 alone
    assert done.stderr.count("adapter written to") == 1
    assert [p.name for p in (tmp_path / "adapters").iterdir()] == ["tiny"]
    manifest = json.loads((tmp_path / "adapters" / "tiny" / "lorag.json").read_text())
    distributed = {"world_size": 2, "type": "MULTI_CPU", "backend": "gloo", "effective_batch_size": 4}
    assert manifest["distributed"] == distributed
    assert manifest["hyperparameters"]["num_processes"] == 2
    assert [e["step"] for e in manifest["history"]["train"]] == [1, 2]
    assert (tmp_path / "adapters" / "tiny" / "adapter_model.safetensors").is_file()
