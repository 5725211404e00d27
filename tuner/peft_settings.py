"""PEFT settings of a recipe: the config PEFT trains with, and what the manifest records of it.

``peft_method`` picks PEFT's own config class (LoRA with its DoRA and rsLoRA variants, IA3,
prompt tuning, prefix tuning); :func:`method_settings` reads back what PEFT resolved (e.g.
``all-linear`` as module names) for ``lorag.json``. This module knows nothing about trainers or
data.
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import SFTRecipe


def peft_config(recipe: SFTRecipe, model_dir: Path):
    """PEFT's config for the recipe's ``peft_method``."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

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
        use_dora=recipe.use_dora,
        use_rslora=recipe.use_rslora,
        task_type="CAUSAL_LM",
    )


def method_settings(recipe: SFTRecipe, adapter_config) -> dict:
    """The settings of the adapter's own method, as PEFT resolved them (e.g. ``all-linear`` to module names)."""
    if recipe.peft_method in ("prompt_tuning", "prefix_tuning"):
        settings = {"num_virtual_tokens": recipe.num_virtual_tokens}
        if recipe.peft_method == "prompt_tuning":
            return settings | {"init_text": recipe.prompt_tuning_init_text}
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
        "use_dora": recipe.use_dora,
        "use_rslora": recipe.use_rslora,
    }
