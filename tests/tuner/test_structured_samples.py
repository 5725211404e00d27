"""Reinforcement fine-tuning's ``response_format``: GRPO's samples on the tiny random model are JSON of the schema.

A random model writes noise; held to the schema, every sample it draws while training, and every held-out answer,
parses and validates, and the grader reads it as ``{{ sample.output_json.* }}``.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from tuner.config import Recipe

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo", "Rome"]},
                                           "sure": {"type": "boolean"}},
          "required": ["city", "sure"], "additionalProperties": False}  # fmt: skip
FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
CITY = {"type": "string_check", "name": "city", "input": "{{ sample.output_json.city }}",
        "reference": "{{ item.reference_answer }}", "operation": "eq"}  # fmt: skip
QUESTIONS = {"Capital of France?": "Paris", "Capital of Japan?": "Tokyo", "Capital of Italy?": "Rome"}


def parsed(text: str) -> dict | None:
    try:
        value = json.loads(text)
        jsonschema.validate(value, SCHEMA)
        return value
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return None


def test_a_constrained_model_samples_only_json_of_the_schema_where_it_wrote_noise_before(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuner.structured import constrain

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Capital of France?"}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    encoded = tokenizer([prompt] * 6, return_tensors="pt", add_special_tokens=False)

    def samples() -> list[str]:
        torch.manual_seed(0)
        out = model.generate(**encoded, do_sample=True, max_new_tokens=48, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)

    assert not any(parsed(text) for text in samples())
    constrain(model, tokenizer, FORMAT)
    texts = samples()
    assert all(parsed(text) for text in texts), texts
    assert len(set(texts)) > 1  # still sampled, not one forced answer


def test_grpo_with_a_response_format_samples_json_that_its_grader_reads(tiny_model_dir, tmp_path, monkeypatch):
    from tuner import grpo

    seen: list[tuple[str, float, str]] = []
    real = grpo.grader_reward

    def recording(*args, **kwargs):
        reward = real(*args, **kwargs)

        def scored(prompts, completions, **columns):
            rewards = reward(prompts, completions, **columns)
            items = [json.loads(item)["reference_answer"] for item in columns[grpo.ITEM_COLUMN]]
            seen.extend(zip([c[-1]["content"] for c in completions], rewards, items, strict=True))
            return rewards

        scored.__name__ = reward.__name__
        return scored

    monkeypatch.setattr(grpo, "grader_reward", recording)
    rows = tmp_path / "rft.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}], "reference_answer": a}) + "\n"
                            for q, a in list(QUESTIONS.items()) * 2))  # fmt: skip
    recipe = Recipe(name="tiny-json", method="grpo", dataset=str(rows), eval_dataset=str(rows), graders=CITY,
                    response_format=FORMAT, num_generations=2, batch_size=2, max_steps=2, max_completion_length=48,
                    eval_steps=1, logging_steps=1, learning_rate=1e-2)  # fmt: skip
    adapter = grpo.run(recipe, tiny_model_dir, tmp_path / "a", tmp_path / "r")
    assert (adapter / "lorag.json").exists()
    assert len(seen) >= 2 * 2 + len(QUESTIONS) * 2  # training samples and held-out answers
    for text, reward, reference in seen:
        value = parsed(text)
        assert value is not None, text
        assert reward == float(value["city"] == reference)


@pytest.mark.parametrize(("fields", "message"), [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objectx"}}}},
     "cannot be compiled: Unsupported type"),
    ({"response_format": {"type": "text"}}, "must be {'type': 'json_schema'"),
    ({"response_format": FORMAT | {"json_schema": {"schema": SCHEMA, "extra": 1}}}, "unknown field 'extra'"),
    ({"method": "sft", "response_format": FORMAT, "graders": None}, "only for method grpo, not sft"),
])  # fmt: skip
def test_a_recipe_with_a_response_format_it_cannot_apply_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**{"name": "g", "method": "grpo", "dataset": "p.jsonl", "graders": CITY} | fields)
