"""The SFT recipe on a tiny random model: what a user relies on after `lorag finetune`."""

import json

import pytest
import torch

from tuner.config import Recipe
from tuner.manifest import AdapterExistsError
from tuner.sft import build_trainer, run
from tuner.training import TrainingError

QA = [
    ("Who are you?", "I am lorag assistant."),
    ("What is your name?", "My name is lorag assistant."),
    ("Who made you?", "The lorag platform made me."),
    ("What is the capital of France?", "Paris."),
]


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 2))
    return path


def recipe(dataset, **fields):
    """A recipe of a few steps that trains on the file as it is: no held-out share, no replay rows."""
    settings = {"name": "tiny", "dataset": str(dataset), "max_steps": 2, "batch_size": 2, "logging_steps": 1,
                "eval_fraction": 0, "replay_prompts": None}  # fmt: skip
    return Recipe(**settings | fields)


def test_loss_is_computed_on_assistant_tokens_only(tiny_model_dir, dataset, tmp_path):
    prepared = build_trainer(recipe(dataset), tiny_model_dir, tmp_path / "runs")
    tokenizer = prepared.run.tokenizer
    learned = set()
    for batch in prepared.trainer.get_train_dataloader():
        for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
            learned.add(tokenizer.decode(ids[labels != -100]))
    assert learned == {answer + "<end_of_turn>" for _, answer in QA}


def test_every_lora_parameter_changes_after_a_few_steps(tiny_model_dir, dataset, tmp_path):
    prepared = build_trainer(recipe(dataset, max_steps=3, learning_rate=1e-2), tiny_model_dir, tmp_path / "runs")
    model = prepared.trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert before and all("lora_" in n for n in before)
    prepared.trainer.train()
    after = dict(model.named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n].detach())]
    assert unchanged == []


def test_adapter_folder_holds_weights_tokenizer_manifest_and_curve(tiny_model_dir, dataset, tmp_path):
    adapter = run(
        recipe(dataset, eval_dataset=str(dataset), eval_steps=1), tiny_model_dir, tmp_path / "a", tmp_path / "r"
    )
    files = {p.name for p in adapter.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "lorag.json",
        "loss_curve.png",
    } <= files
    manifest = json.loads((adapter / "lorag.json").read_text())
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    assert manifest["name"] == "tiny" and manifest["method"] == "sft"
    assert manifest["base_model"]["id"] == base["id"] and manifest["base_model"]["sha256"] == base["sha256"]
    assert manifest["chat_template_sha256"] == base["chat_template_sha256"]
    assert manifest["lora"]["r"] == 8 and set(manifest["lora"]["target_modules"]) >= {"q_proj", "down_proj"}
    assert manifest["dataset"]["rows"] == {"train": 8, "eval": 8} and len(manifest["dataset"]["sha256"]) == 64
    assert [e["step"] for e in manifest["history"]["train"]] == [1, 2]
    assert manifest["history"]["eval"] and manifest["metrics"]["perplexity"] > 1
    assert manifest["lorag_version"] and manifest["created"]
    assert (adapter / "tokenizer_config.json").exists()


def test_an_existing_adapter_is_never_overwritten_silently(tiny_model_dir, dataset, tmp_path):
    adapters, runs = tmp_path / "a", tmp_path / "r"
    first = run(recipe(dataset), tiny_model_dir, adapters, runs)
    created = json.loads((first / "lorag.json").read_text())["created"]
    weights = (first / "adapter_model.safetensors").read_bytes()
    with pytest.raises(AdapterExistsError, match="already exists"):
        run(recipe(dataset, learning_rate=1e-2), tiny_model_dir, adapters, runs)
    assert (first / "adapter_model.safetensors").read_bytes() == weights
    assert json.loads((first / "lorag.json").read_text())["created"] == created
    run(recipe(dataset, learning_rate=1e-2, overwrite=True), tiny_model_dir, adapters, runs)
    assert (first / "adapter_model.safetensors").read_bytes() != weights
    assert not [p for p in adapters.iterdir() if p.name.startswith(".")]


def test_resume_continues_from_the_last_checkpoint(tiny_model_dir, dataset, tmp_path):
    adapters, runs = tmp_path / "a", tmp_path / "r"
    first = run(recipe(dataset, max_steps=2, save_steps=2), tiny_model_dir, adapters, runs)
    assert (runs / "tiny" / "checkpoint-2").is_dir()
    before = json.loads((first / "lorag.json").read_text())["history"]["train"]
    # A different learning rate would change step 2's loss, had training restarted from scratch.
    resumed = run(
        recipe(dataset, max_steps=4, save_steps=2, learning_rate=1e-2, resume_from_checkpoint=True, overwrite=True),
        tiny_model_dir,
        adapters,
        runs,
    )
    after = json.loads((resumed / "lorag.json").read_text())["history"]["train"]
    assert [e["step"] for e in after] == [1, 2, 3, 4]
    assert after[:2] == before
    with pytest.raises(TrainingError, match="nothing to resume"):
        run(recipe(dataset, name="fresh", resume_from_checkpoint=True), tiny_model_dir, adapters, runs)


def test_resume_skips_a_checkpoint_cut_off_by_a_killed_process(tiny_model_dir, dataset, tmp_path):
    adapters, runs = tmp_path / "a", tmp_path / "r"
    run(recipe(dataset, max_steps=2, save_steps=2), tiny_model_dir, adapters, runs)
    cut_off = runs / "tiny" / "checkpoint-3"  # killed while saving: the weights, no trainer state
    cut_off.mkdir()
    (cut_off / "adapter_config.json").write_text("{}")
    resumed = run(
        recipe(dataset, max_steps=4, save_steps=2, resume_from_checkpoint=True, overwrite=True),
        tiny_model_dir,
        adapters,
        runs,
    )
    steps = [e["step"] for e in json.loads((resumed / "lorag.json").read_text())["history"]["train"]]
    assert steps == [1, 2, 3, 4]  # steps 1 and 2 from the first run, 3 and 4 after checkpoint-2
    assert not cut_off.exists()
    (runs / "tiny" / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4, "log_hist')
    (runs / "tiny" / "checkpoint-2" / "trainer_state.json").unlink()
    with pytest.raises(TrainingError, match="no complete checkpoint"):
        run(recipe(dataset, max_steps=4, resume_from_checkpoint=True, overwrite=True), tiny_model_dir, adapters, runs)


def test_classification_eval_reports_accuracy_precision_recall_f1(tiny_model_dir, tmp_path):
    path = tmp_path / "sentiment.csv"
    path.write_text("text,label\ngreat film,positive\ndull plot,negative\nloved it,positive\nboring,negative\n")
    adapter = run(
        Recipe(name="cls", dataset=str(path), eval_fraction=0.5, max_steps=2, batch_size=2),
        tiny_model_dir,
        tmp_path / "a",
        tmp_path / "r",
    )
    manifest = json.loads((adapter / "lorag.json").read_text())
    assert manifest["dataset"]["labels"] == ["negative", "positive"]
    assert manifest["dataset"]["rows"] == {"train": 2, "eval": 2, "replay": 0}  # auto: drift measured, not replayed
    assert manifest["behaviour"]["kept"]["prompts"] == 12
    for key in ("accuracy", "precision", "recall", "f1"):
        assert 0.0 <= manifest["metrics"][key] <= 1.0


def test_early_stopping_needs_eval_data(tiny_model_dir, dataset, tmp_path):
    with pytest.raises(TrainingError, match="needs eval data"):
        build_trainer(recipe(dataset, early_stopping_patience=1), tiny_model_dir, tmp_path)


def test_compact_lm_head_gives_the_same_loss_and_gradients(tiny_model_dir, dataset, tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils

    from tuner.lm_head import enable_compact_lm_head

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test
    prepared = build_trainer(recipe(dataset, compact_lm_head=False, lora_dropout=0.0), tiny_model_dir, tmp_path)
    model = prepared.trainer.model
    batch = next(iter(prepared.trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any()

    def loss_and_grads():
        model.zero_grad()
        loss = model(**batch, fused_lm_head=True).loss
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    full_loss, full_grads = loss_and_grads()
    assert enable_compact_lm_head()
    compact_loss, compact_grads = loss_and_grads()
    assert compact_loss == pytest.approx(full_loss, rel=1e-5)
    for a, b in zip(full_grads, compact_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "variant", [{"use_dora": True}, {"use_rslora": True}, {"target_modules": ["q_proj", "v_proj"]}]
)
def test_lora_variants_train_and_are_recorded(tiny_model_dir, dataset, tmp_path, variant):
    adapter = run(recipe(dataset, lora_r=4, **variant), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    config = json.loads((adapter / "adapter_config.json").read_text())
    manifest = json.loads((adapter / "lorag.json").read_text())
    assert config["r"] == 4 and manifest["lora"]["r"] == 4
    for key, value in variant.items():
        if key == "target_modules":
            assert sorted(config[key]) == value and manifest["lora"][key] == value
        else:
            assert config[key] is True and manifest["lora"][key] is True


def test_early_stopping_stops_when_eval_loss_stops_improving(tiny_model_dir, dataset, tmp_path):
    # A learning rate this high makes the eval loss climb within a few steps.
    fields = {"max_steps": 30, "learning_rate": 3.0, "eval_dataset": str(dataset), "eval_steps": 1}
    adapter = run(recipe(dataset, early_stopping_patience=2, **fields), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    manifest = json.loads((adapter / "lorag.json").read_text())
    steps = [e["step"] for e in manifest["history"]["train"]]
    assert steps[-1] < 30
    evals = [e["loss"] for e in manifest["history"]["eval"]]
    assert manifest["metrics"]["eval_loss"] == pytest.approx(min(evals[:-1]), rel=1e-4)  # the best checkpoint


def test_packing_trains(tiny_model_dir, dataset, tmp_path):
    adapter = run(recipe(dataset, packing=True, max_length=64), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    assert json.loads((adapter / "lorag.json").read_text())["hyperparameters"]["packing"] is True


LEARNED = {"ia3": "ia3_l", "prompt_tuning": "prompt_encoder", "prefix_tuning": "prompt_encoder"}


@pytest.mark.parametrize("method", LEARNED)
def test_other_peft_methods_train_only_their_own_parameters(tiny_model_dir, dataset, tmp_path, method):
    fields = {"peft_method": method, "num_virtual_tokens": 4, "max_steps": 3, "learning_rate": 1e-2}
    prepared = build_trainer(recipe(dataset, **fields), tiny_model_dir, tmp_path / "runs")
    model = prepared.trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert before and all(LEARNED[method] in n for n in before)
    prepared.trainer.train()
    after = dict(model.named_parameters())
    assert [n for n, p in before.items() if torch.equal(p, after[n].detach())] == []


@pytest.mark.parametrize(
    "fields, recorded",
    [
        (
            {"peft_method": "ia3", "target_modules": ["down_proj", "q_proj", "v_proj"]},
            {"target_modules": ["down_proj", "q_proj", "v_proj"], "feedforward_modules": ["down_proj"]},
        ),
        (
            {"peft_method": "prompt_tuning", "num_virtual_tokens": 4, "prompt_tuning_init_text": "lorag assistant"},
            {"num_virtual_tokens": 4, "init_text": "lorag assistant"},
        ),
        (
            {"peft_method": "prefix_tuning", "num_virtual_tokens": 3},
            {"num_virtual_tokens": 3, "prefix_projection": False},
        ),
    ],
    ids=["ia3", "prompt_tuning", "prefix_tuning"],
)
def test_other_peft_methods_write_an_adapter_the_local_engine_serves(
    tiny_model_dir, dataset, tmp_path, fields, recorded
):
    import asyncio

    from serve.adapters import AdapterRegistry
    from serve.engine import Message, SamplingParams
    from serve.local_engine import LIMITS, LocalEngine

    method = fields["peft_method"]
    adapter = run(recipe(dataset, **fields), tiny_model_dir, tmp_path / "a", tmp_path / "r")
    config = json.loads((adapter / "adapter_config.json").read_text())
    manifest = json.loads((adapter / "lorag.json").read_text())
    assert manifest["method"] == "sft" and manifest["peft_method"] == method and "lora" not in manifest
    assert manifest["peft_type"] == config["peft_type"] == method.upper() and manifest[method] == recorded

    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    spec = AdapterRegistry(adapter.parent, base["id"], base["sha256"], LIMITS).check(adapter)

    async def serve():
        engine = LocalEngine(tiny_model_dir, base["id"])
        await engine.load_adapter(spec)
        answer = await engine.generate([Message("user", "Who are you?")], SamplingParams(max_tokens=4), "tiny")
        await engine.close()
        return answer

    assert asyncio.run(serve()).completion_tokens > 0
