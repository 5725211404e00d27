"""`lorag export ADAPTER --merge OUT`: the merged folder is a plain model that answers as the adapter does."""

import asyncio
import json

import pytest

from serve.engine import Message, SamplingParams
from tuner.export import EXPORT_MANIFEST, ExportError, merge

PROMPTS = ["Who are you?", "What is the capital of France?", "Write a haiku about autumn leaves."]


@pytest.fixture(scope="module")
def merged(random_adapters, tiny_model_dir, tmp_path_factory):
    """The `alpha` adapter merged by the real command line (which runs `python -m tuner.export`)."""
    from typer.testing import CliRunner

    from gateway.cli.main import app

    out = tmp_path_factory.mktemp("export") / "alpha-merged"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORAG_ADAPTERS_DIR", str(random_adapters["alpha"].parent))
        env.setenv("LORAG_CACHE_DIR", str(tiny_model_dir.parents[1]))
        result = CliRunner().invoke(app, ["export", "alpha", "--merge", str(out)])
    assert result.exit_code == 0, result.output
    return out


def greedy(model_dir, name, adapter=None):
    from serve.adapters import AdapterRegistry
    from serve.local_engine import LIMITS, LocalEngine

    async def answers():
        engine = LocalEngine(model_dir, name)
        if adapter is not None:
            base = json.loads((model_dir / "lorag-model.json").read_text())
            await engine.load_adapter(AdapterRegistry(adapter.parent, name, base["sha256"], LIMITS).check(adapter))
        params = SamplingParams(max_tokens=12, temperature=0)
        out = [await engine.generate([Message("user", p)], params, adapter and adapter.name) for p in PROMPTS]
        await engine.close()
        return [(g.text, g.completion_tokens) for g in out]

    return asyncio.run(answers())


def test_the_merged_model_answers_as_the_adapter_does(merged, random_adapters, tiny_model_dir):
    base_id = json.loads((tiny_model_dir / "lorag-model.json").read_text())["id"]
    with_adapter = greedy(tiny_model_dir, base_id, random_adapters["alpha"])
    assert greedy(merged, "alpha-merged") == with_adapter
    assert greedy(tiny_model_dir, base_id) != with_adapter  # the adapter changes the answers


def test_the_merged_folder_is_a_plain_model_with_its_chat_template(merged, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from serve.models import PreparedModel, prepare

    names = {p.name for p in merged.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", EXPORT_MANIFEST} <= names
    assert "adapter_config.json" not in names and not [p for p in merged.parent.iterdir() if p.name.startswith(".")]
    assert type(AutoModelForCausalLM.from_pretrained(merged)).__name__ == "Gemma3ForCausalLM"
    base = PreparedModel.read(tiny_model_dir)
    assert (
        AutoTokenizer.from_pretrained(merged).chat_template
        == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    )
    record = json.loads((merged / EXPORT_MANIFEST).read_text())
    assert record["adapter"] == "alpha" and record["base_model"]["sha256"] == base.sha256
    served = PreparedModel.read(prepare(str(merged), tmp_path))  # `LORAG_BASE_MODEL=OUT lorag serve` prepares it so
    assert served.chat_template_sha256 == base.chat_template_sha256 and served.end_of_turn == base.end_of_turn


def test_what_cannot_be_merged_is_refused_with_one_line(merged, random_adapters, tiny_model_dir, tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    alpha = random_adapters["alpha"]
    with pytest.raises(ExportError, match="already exists"):
        merge(alpha, tiny_model_dir, merged)
    prompt = tmp_path / "prompt"
    config = PromptTuningConfig(num_virtual_tokens=2, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config).save_pretrained(prompt)
    (prompt / "lorag.json").write_text((alpha / "lorag.json").read_text())
    with pytest.raises(ExportError, match="PROMPT_TUNING adapter adds virtual tokens"):
        merge(prompt, tiny_model_dir, tmp_path / "out")
    other = tmp_path / "other"
    other.mkdir()
    for path in alpha.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((alpha / "lorag.json").read_text())
    (other / "lorag.json").write_text(json.dumps(manifest | {"base_model": manifest["base_model"] | {"sha256": "0"}}))
    with pytest.raises(ExportError, match="trained on another base model"):
        merge(other, tiny_model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()
