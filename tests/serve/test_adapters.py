"""The adapter registry refuses what an engine must not serve, with a reason, and keeps the rest."""

import json
import shutil

import pytest

from serve.adapters import AdapterRegistry, EngineLimits


@pytest.fixture
def folder(tmp_path, tiny_adapter_dir):
    shutil.copytree(tiny_adapter_dir, tmp_path / "tiny-lora")
    return tmp_path


def registry(folder, tiny_model_dir, **limits):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    return AdapterRegistry(folder, base["id"], base["sha256"], EngineLimits(**limits))


def clone(folder, name, edit_manifest=None, edit_config=None):
    path = folder / name
    shutil.copytree(folder / "tiny-lora", path)
    for file, edit in (("lorag.json", edit_manifest), ("adapter_config.json", edit_config)):
        data = json.loads((path / file).read_text())
        if file == "lorag.json":
            data["name"] = name
        if edit:
            edit(data)
        (path / file).write_text(json.dumps(data))
    return path


def test_a_valid_adapter_is_servable(folder, tiny_model_dir):
    scan = registry(folder, tiny_model_dir).scan()
    assert scan.refused == {}
    spec = scan.adapters["tiny-lora"]
    assert spec.peft_type == "LORA" and spec.rank == 8 and "q_proj" in spec.target_modules


def test_bad_adapters_are_refused_with_a_reason_and_the_good_one_still_served(folder, tiny_model_dir):
    clone(folder, "other-base", edit_manifest=lambda m: m["base_model"].update(id="llama", sha256="0" * 64))
    clone(folder, "prompt", edit_config=lambda c: c.update(peft_type="PROMPT_TUNING"))
    clone(folder, "renamed", edit_manifest=lambda m: m.update(name="something-else"))
    corrupt = clone(folder, "corrupt")
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (clone(folder, "no-manifest") / "lorag.json").unlink()
    shutil.copytree(folder / "tiny-lora", folder / ".tiny-lora.tmp-123")  # an adapter being written

    scan = registry(folder, tiny_model_dir).scan()
    assert list(scan.adapters) == ["tiny-lora"]
    assert set(scan.refused) == {"other-base", "prompt", "renamed", "corrupt", "no-manifest"}
    assert "trained on base model 'llama'" in scan.refused["other-base"]
    assert "PROMPT_TUNING is not served" in scan.refused["prompt"]
    assert "names 'something-else'" in scan.refused["renamed"]
    assert "unreadable" in scan.refused["corrupt"]
    assert scan.refused["no-manifest"] == "no lorag.json"


def test_rank_and_target_module_limits(folder, tiny_model_dir):
    assert (
        "rank 8 is over this engine's maximum of 4"
        in registry(folder, tiny_model_dir, max_rank=4).scan().refused["tiny-lora"]
    )
    limited = registry(folder, tiny_model_dir, unsupported_targets=frozenset({"lm_head", "q_proj"}))
    assert limited.scan().refused["tiny-lora"] == "targets modules this engine cannot adapt: q_proj"
    clone(folder, "saves-head", edit_config=lambda c: c.update(modules_to_save=["lm_head"]))
    assert "saves-head" in registry(folder, tiny_model_dir).scan().adapters
    refused = registry(folder, tiny_model_dir, modules_to_save=False).scan().refused
    assert "trained copies of whole modules (lm_head)" in refused["saves-head"]


def test_malformed_files_are_refused_without_hiding_the_others(folder, tiny_model_dir):
    clone(folder, "string-rank", edit_config=lambda c: c.update(r="8"))
    clone(folder, "no-base", edit_manifest=lambda m: m.update(base_model="gemma"))
    clone(folder, "odd-targets", edit_config=lambda c: c.update(target_modules=7))
    scan = registry(folder, tiny_model_dir).scan()
    assert list(scan.adapters) == ["tiny-lora"]
    assert "rank r must be a positive integer, not '8'" in scan.refused["string-rank"]
    assert scan.refused["no-base"] == "lorag.json has no base_model object"
    assert "cannot be checked (TypeError" in scan.refused["odd-targets"]


def test_weights_that_disagree_with_the_declared_rank_are_refused(folder, tiny_model_dir):
    clone(folder, "lying", edit_config=lambda c: c.update(r=4))
    assert "not rank 4" in registry(folder, tiny_model_dir).scan().refused["lying"]


def test_adapters_added_or_removed_are_seen_on_the_next_scan(folder, tiny_model_dir):
    reg = registry(folder, tiny_model_dir)
    first = reg.scan().adapters["tiny-lora"].version
    clone(folder, "second")
    assert set(reg.scan().adapters) == {"tiny-lora", "second"}
    shutil.rmtree(folder / "second")
    assert set(reg.scan().adapters) == {"tiny-lora"}
    (folder / "tiny-lora" / "lorag.json").write_text((folder / "tiny-lora" / "lorag.json").read_text())
    assert reg.scan().adapters["tiny-lora"].version != first
