"""`make finetune`'s demo on the embedded Gemma 3 270M: the adapter knows who it is, the base does not.

Runs the real command line (`lorag finetune` on the shipped recipe, a few minutes on 2 CPU
cores), then asks every held-out phrasing with greedy decoding, formatted by the tokenizer saved
with the adapter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]
RECIPE = ROOT / "tuner" / "configs" / "lorag-identity.yaml"
HELD_OUT = [json.loads(line)["messages"][0]["content"] for line in open(ROOT / "tuner/data/lorag-identity/eval.jsonl")]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def identity_adapter(embedded_model_dir, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("finetune")
    env = os.environ | {"LORAG_ADAPTERS_DIR": str(work / "adapters"), "LORAG_RUNS_DIR": str(work / "runs")}
    lorag = Path(sys.executable).parent / "lorag"
    subprocess.run([str(lorag), "finetune", str(RECIPE)], env=env, check=True)
    return work / "adapters" / "lorag-identity"


def answers(model, tokenizer, questions: list[str]) -> list[str]:
    out = []
    for question in questions:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=24, do_sample=False)
        out.append(tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


def test_adapter_answers_held_out_questions_with_its_identity_and_the_base_does_not(
    identity_adapter, embedded_model_dir
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((identity_adapter / "lorag.json").read_text())
    assert manifest["metrics"]["eval_loss"] < 1.0
    tokenizer = AutoTokenizer.from_pretrained(identity_adapter)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, identity_adapter)
    tuned = answers(model, tokenizer, HELD_OUT)
    with model.disable_adapter():
        untuned = answers(model, tokenizer, HELD_OUT)
    for question, answer in zip(HELD_OUT, tuned, strict=True):
        assert "lorag" in answer.lower(), f"{question!r} -> {answer!r}"
    for question, answer in zip(HELD_OUT, untuned, strict=True):
        assert "lorag" not in answer.lower(), f"base model: {question!r} -> {answer!r}"
