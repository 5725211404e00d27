"""PEFT settings of a recipe: the config PEFT trains with, and what the manifest records of it.

``peft_method`` picks PEFT's own config class (LoRA with its DoRA and rsLoRA variants, IA3,
prompt tuning, P-tuning's prompt encoder, prefix tuning), or none for ``freeze`` and ``full``,
which train the model's own weights (:func:`freeze_all_but_last`); :func:`method_settings`
reads back what PEFT resolved (e.g. ``all-linear`` as module names) for ``lorag.json``. This
module knows nothing about trainers or data.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import Recipe

WHOLE_MODEL = ("freeze", "full")


def peft_config(recipe: Recipe, model_dir: Path):
    """PEFT's config for the recipe's ``peft_method``; None for a whole-model tuning type."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    if recipe.peft_method in WHOLE_MODEL:
        return None
    if recipe.peft_method == "ia3":
        return IA3Config(
            target_modules=recipe.target_modules, feedforward_modules=recipe.feedforward_modules, task_type="CAUSAL_LM"
        )
    if recipe.peft_method == "prompt_tuning":
        text = recipe.prompt_tuning_init_text
        return PromptTuningConfig(
            num_virtual_tokens=recipe.num_virtual_tokens,
            prompt_tuning_init="TEXT" if text else "RANDOM",
            prompt_tuning_init_text=text,
            tokenizer_name_or_path=str(model_dir) if text else None,
            task_type="CAUSAL_LM",
        )
    if recipe.peft_method == "p_tuning":
        return PromptEncoderConfig(
            num_virtual_tokens=recipe.num_virtual_tokens,
            encoder_hidden_size=recipe.encoder_hidden_size,
            task_type="CAUSAL_LM",
        )
    if recipe.peft_method == "prefix_tuning":
        return PrefixTuningConfig(
            num_virtual_tokens=recipe.num_virtual_tokens,
            prefix_projection=recipe.prefix_projection,
            task_type="CAUSAL_LM",
        )
    return LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.target_modules,
        use_dora=recipe.use_dora or recipe.peft_method == "dora",
        use_rslora=recipe.use_rslora or recipe.peft_method == "rslora",
        task_type="CAUSAL_LM",
    )


def freeze_all_but_last(model, layers: int) -> None:
    """``freeze``: only the last ``layers`` decoder layers and the final norm keep learning."""
    decoder = model.get_decoder()
    for parameter in model.parameters():
        parameter.requires_grad = False
    for module in [*decoder.layers[-layers:], decoder.norm]:
        for parameter in module.parameters():
            parameter.requires_grad = True


def method_settings(recipe: Recipe, adapter_config) -> dict:
    """The settings of the tuning type, as PEFT resolved them (e.g. ``all-linear`` to module names)."""
    if recipe.peft_method == "freeze":
        return {"trainable_layers": recipe.freeze_trainable_layers}
    if recipe.peft_method == "full":
        return {}
    if recipe.peft_method in ("prompt_tuning", "p_tuning", "prefix_tuning"):
        settings = {"num_virtual_tokens": recipe.num_virtual_tokens}
        if recipe.peft_method == "prompt_tuning":
            return settings | {"init_text": recipe.prompt_tuning_init_text}
        if recipe.peft_method == "p_tuning":
            return settings | {"encoder_hidden_size": recipe.encoder_hidden_size}
        return settings | {"prefix_projection": recipe.prefix_projection}
    modules = sorted({m.rsplit(".", 1)[-1] for m in adapter_config.target_modules})
    if recipe.peft_method == "ia3":
        feedforward = sorted({m.rsplit(".", 1)[-1] for m in adapter_config.feedforward_modules})
        return {"target_modules": modules, "feedforward_modules": feedforward}
    return {
        "r": recipe.lora_r,
        "alpha": recipe.lora_alpha,
        "dropout": recipe.lora_dropout,
        "target_modules": modules,
        "use_dora": adapter_config.use_dora,
        "use_rslora": adapter_config.use_rslora,
    }
