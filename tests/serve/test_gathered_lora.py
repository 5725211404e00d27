"""Gathered per-row LoRA computes, for every row of a mixed batch, what PEFT computes for that row's adapter alone."""

import pytest
import torch

from serve.gathered_lora import GatheredLora


def _configs():
    from peft import LoraConfig

    return {
        "wide": LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False),
        "narrow": LoraConfig(r=2, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
        "rslora": LoraConfig(
            r=4,
            lora_alpha=8,
            use_rslora=True,
            target_modules="all-linear",
            rank_pattern={"o_proj": 6},
            init_lora_weights=False,
        ),  # fmt: skip
        "dora": LoraConfig(r=4, target_modules=["q_proj"], use_dora=True, init_lora_weights=False),
    }


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    """A PeftModel of the tiny model holding the four adapters above."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    configs = iter(_configs().items())
    name, config = next(configs)
    model = get_peft_model(base, config, adapter_name=name)
    for name, config in configs:
        model.add_adapter(name, config)
    return model.eval()


def _peft_alone(model, key, ids):
    if key is None:
        with model.disable_adapter():
            return model(input_ids=ids).logits
    model.set_adapter(key)
    return model(input_ids=ids).logits


def test_a_mixed_batch_gets_each_rows_adapter_as_peft_computes_it(model):
    keys = ["wide", None, "narrow", "rslora", "wide", None]
    ids = torch.randint(0, model.config.vocab_size, (len(keys), 7), generator=torch.Generator().manual_seed(1))
    lora = GatheredLora()
    with torch.inference_mode():
        expected = torch.cat([_peft_alone(model, key, ids[i : i + 1]) for i, key in enumerate(keys)])
        with lora.applied(model, keys):
            gathered = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    torch.testing.assert_close(gathered, expected, rtol=1e-4, atol=1e-4)
    assert all(not torch.allclose(gathered[i], base[i]) for i, key in enumerate(keys) if key)
    torch.testing.assert_close(gathered[1], base[1])


def test_the_hooks_are_gone_and_peft_works_as_before_after_a_batch(model):
    ids = torch.randint(0, model.config.vocab_size, (1, 5), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        before = _peft_alone(model, "wide", ids)
        with GatheredLora().applied(model, ["narrow"]):
            model(input_ids=ids)
        torch.testing.assert_close(_peft_alone(model, "wide", ids), before)


def test_dora_is_left_to_peft(model):
    lora = GatheredLora()
    assert [lora.supports(model, key) for key in _configs()] == [True, True, True, False]


def test_the_stacks_follow_a_deleted_adapter(model, tiny_model_dir):
    from peft import LoraConfig

    lora = GatheredLora()
    ids = torch.randint(0, model.config.vocab_size, (1, 5), generator=torch.Generator().manual_seed(3))
    model.add_adapter("extra", LoraConfig(r=2, target_modules=["k_proj"], init_lora_weights=False))
    with torch.inference_mode(), lora.applied(model, ["extra"]):
        extra = model(input_ids=ids).logits
    model.delete_adapter("extra")
    lora.invalidate()
    with torch.inference_mode():
        with lora.applied(model, ["wide"]):
            wide = model(input_ids=ids).logits
        torch.testing.assert_close(wide, _peft_alone(model, "wide", ids))
    assert not torch.allclose(extra, wide)
