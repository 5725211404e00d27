"""Every training method and tuning type on the tiny random model: it trains, it serves, its manifest is complete.

Adapters are loaded by the LocalEngine through the registry, as `lorag serve` does; freeze and
full runs are whole models, prepared and served as a base model.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams
from serve.local_engine import LIMITS, LocalEngine
from serve.models import PreparedModel, prepare
from tuner import dpo, kto, orpo, sft
from tuner.config import Recipe
from tuner.formats import DatasetError

QUESTIONS = ["What is the capital of France?", "What is the capital of Japan?", "Who wrote Hamlet?"]
SHORT = ["Paris.", "Tokyo.", "Shakespeare."]
LONG = [f"Well, that is a good question, and the answer, after some thought, is {s}" for s in SHORT]
GREEDY = SamplingParams(max_tokens=6, temperature=0)
RUNS = {"dpo": dpo.run, "orpo": orpo.run, "kto": kto.run, "sft": sft.run}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preference-data")
    pairs = [{"prompt": q, "chosen": s, "rejected": long} for q, s, long in zip(QUESTIONS, SHORT, LONG, strict=True)]
    labelled = [{"prompt": r["prompt"], "completion": r["chosen"], "label": True} for r in pairs]
    labelled += [{"prompt": r["prompt"], "completion": r["rejected"], "label": False} for r in pairs]
    chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": s}]} for q, s in
             zip(QUESTIONS, SHORT, strict=True)]  # fmt: skip
    out = {}
    for name, rows in (("pairs", pairs * 2), ("labelled", labelled), ("chats", chats * 2)):
        out[name] = folder / f"{name}.jsonl"
        out[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def recipe(method: str, dataset, **fields) -> Recipe:
    base = {"name": f"tiny-{method}", "method": method, "dataset": str(dataset), "max_steps": 2, "batch_size": 2}
    return Recipe(**base | {"eval_dataset": str(dataset), "logging_steps": 1, "learning_rate": 1e-2} | fields)


def served_answer(model_dir, adapter=None) -> str:
    base = PreparedModel.read(model_dir)

    async def ask():
        engine = LocalEngine(model_dir, base.id)
        try:
            if adapter is not None:
                spec = AdapterRegistry(adapter.parent, base.id, base.sha256, LIMITS).check(adapter)
                await engine.load_adapter(spec)
            return (await engine.generate([Message("user", QUESTIONS[0])], GREEDY, adapter and adapter.name)).text
        finally:
            await engine.close()

    return asyncio.run(ask())


@pytest.mark.parametrize("method, data_name", [("dpo", "pairs"), ("orpo", "pairs"), ("kto", "labelled")])
def test_preference_methods_train_an_adapter_the_local_engine_serves(tiny_model_dir, data, tmp_path, method, data_name):
    adapter = RUNS[method](recipe(method, data[data_name]), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((adapter / "lorag.json").read_text())
    assert manifest["method"] == method and manifest["kind"] == "adapter" and manifest["peft_type"] == "LORA"
    assert manifest["dataset"]["rows"] == {"train": 6, "eval": 6} and manifest["history"]["train"]
    assert {"train_loss", "eval_loss", "reward_margin"} <= set(manifest["metrics"])
    if method != "kto":
        assert 0 <= manifest["metrics"]["preference_accuracy"] <= 1
    assert manifest["hyperparameters"]["max_steps"] == 2
    assert served_answer(tiny_model_dir, adapter) != served_answer(tiny_model_dir)


def test_dpo_options_are_trls_own(tiny_model_dir, data, tmp_path):
    adapter = dpo.run(
        recipe("dpo", data["pairs"], beta=0.5, loss_type=["ipo"], eval_dataset=None), tiny_model_dir, tmp_path / "a",
        tmp_path / "r",
    )  # fmt: skip
    hyperparameters = json.loads((adapter / "lorag.json").read_text())["hyperparameters"]
    assert (hyperparameters["beta"], hyperparameters["loss_type"]) == (0.5, ["ipo"])


@pytest.mark.parametrize(
    "method, data_name, complaint",
    [
        ("kto", "pairs", "trains on labelled answers"),
        ("dpo", "labelled", "trains on pairs"),
        ("dpo", "chats", "line 1"),
    ],
)
def test_data_of_the_wrong_kind_is_refused_naming_the_file(
    tiny_model_dir, data, tmp_path, method, data_name, complaint
):
    with pytest.raises(DatasetError, match=complaint) as caught:
        RUNS[method](recipe(method, data[data_name]), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    assert str(data[data_name]) in str(caught.value)


@pytest.mark.parametrize("tuning", ["dora", "rslora", "p_tuning"])
def test_adapter_tuning_types_are_served(tiny_model_dir, data, tmp_path, tuning):
    fields = {"peft_method": tuning, "num_virtual_tokens": 4}
    adapter = sft.run(recipe("sft", data["chats"], **fields), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((adapter / "lorag.json").read_text())
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert manifest["peft_method"] == tuning and manifest["peft_type"] == config["peft_type"]
    if tuning != "p_tuning":
        assert config[f"use_{tuning}"] is True and manifest[tuning][f"use_{tuning}"] is True
    assert served_answer(tiny_model_dir, adapter) != served_answer(tiny_model_dir)


@pytest.mark.parametrize("tuning", ["freeze", "full"])
def test_whole_model_runs_write_a_model_lorag_serves_as_its_base(tiny_model_dir, data, tmp_path, tuning):
    fields = {"peft_method": tuning, "freeze_trainable_layers": 1}
    folder = dpo.run(recipe("dpo", data["pairs"], **fields), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((folder / "lorag.json").read_text())
    assert (
        manifest["kind"] == "model"
        and manifest["peft_type"] == "NONE"
        and not (folder / "adapter_config.json").exists()
    )
    assert manifest[tuning] == ({"trainable_layers": 1} if tuning == "freeze" else {})
    prepared = prepare(str(folder), cache_dir=tmp_path / "cache")
    assert served_answer(prepared) != served_answer(tiny_model_dir)


def test_a_reward_model_learns_to_rank_pairs_and_is_not_served_as_a_chat_adapter(tiny_model_dir, data, tmp_path):
    from serve.adapters import AdapterRefused
    from tuner import reward

    folder = reward.run(recipe("reward", data["pairs"]), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((folder / "lorag.json").read_text())
    assert manifest["kind"] == "reward_model" and manifest["method"] == "reward"
    assert 0 <= manifest["metrics"]["pairwise_accuracy"] <= 1 and "reward_margin" in manifest["metrics"]
    base = PreparedModel.read(tiny_model_dir)
    with pytest.raises(AdapterRefused, match="is a reward model, not a chat adapter"):
        AdapterRegistry(folder.parent, base.id, base.sha256, LIMITS).check(folder)


def test_grpo_learns_from_a_reward_model_and_functions_and_reports_the_reward_before_and_after(
    tiny_model_dir, data, tmp_path
):
    from tuner import grpo, reward

    scorer = reward.run(
        recipe("reward", data["pairs"], eval_dataset=None), tiny_model_dir, tmp_path / "a", tmp_path / "r"
    )
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in QUESTIONS * 2))
    fields = {"reward_model": str(scorer), "reward_functions": ["brevity"], "num_generations": 2,
              "max_completion_length": 6, "eval_dataset": str(prompts)}  # fmt: skip
    adapter = grpo.run(recipe("grpo", prompts, **fields), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((adapter / "lorag.json").read_text())
    rewards = {"functions": ["brevity"], "model": str(scorer), "graders": None}
    assert manifest["method"] == "grpo" and manifest["rewards"] == rewards
    assert isinstance(manifest["metrics"]["reward_before"], float) and "reward_after" in manifest["metrics"]
    assert served_answer(tiny_model_dir, adapter) != served_answer(tiny_model_dir)


def test_grpo_needs_something_to_score_with(tmp_path):
    with pytest.raises(ValueError, match="needs reward_functions, a reward_model or graders"):
        Recipe(name="g", method="grpo", dataset="p.jsonl")


CAPITAL = {"type": "string_check", "name": "capital", "input": "{{ sample.output_text }}",
           "reference": "{{ item.reference_answer }}", "operation": "ilike"}  # fmt: skip


def test_grpo_with_an_openai_grader_reads_chat_rows_and_scores_held_out_answers_while_training(
    tiny_model_dir, tmp_path
):
    from tuner import grpo

    rows = tmp_path / "rft.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}], "reference_answer": a[:-1]})
                            + "\n" for q, a in zip(QUESTIONS * 2, SHORT * 2, strict=True)))  # fmt: skip
    events = tmp_path / "events.jsonl"
    fields = {"graders": CAPITAL, "num_generations": 2, "max_completion_length": 6, "eval_steps": 1,
              "events_file": str(events)}  # fmt: skip
    adapter = grpo.run(recipe("grpo", rows, **fields), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((adapter / "lorag.json").read_text())
    assert manifest["rewards"]["graders"] == CAPITAL and 0 <= manifest["metrics"]["reward_after"] <= 1
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert any("reward" in e for e in logged) and any("eval_reward" in e for e in logged)


@pytest.mark.parametrize(("fields", "message"), [
    ({"graders": CAPITAL | {"operation": "same"}}, "graders.operation"),
    ({"graders": {"type": "score_model", "name": "j", "model": "m", "input": [{"role": "user", "content": "x"}]}},
     "needs judge_base_url"),
])  # fmt: skip
def test_grpo_refuses_a_grader_it_cannot_run(fields, message):
    with pytest.raises(ValueError, match=message):
        Recipe(name="g", method="grpo", dataset="p.jsonl", **fields)
    with pytest.raises(ValueError, match="for method grpo, not sft"):
        Recipe(name="s", method="sft", dataset="c.jsonl", graders=CAPITAL)
