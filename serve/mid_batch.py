"""Whether an adapter may be loaded into the LocalEngine while a batch runs, without changing its rows' output.

This module knows nothing about requests or batching beyond the model the engine runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from serve.adapters import AdapterSpec
from serve.row_adapters import ROW_TYPES


def safe_mid_batch(spec: AdapterSpec, engine) -> Callable[[], bool]:
    """A check: would loading ``spec`` while a batch runs leave the running rows' output as it is?

    A prompt, prefix or IA3 adapter is only read. A LoRA adds its matrices to LoRA layers
    that the batch's per-row adapter choice already covers; a new LoRA layer (the first LoRA,
    or a module no loaded LoRA adapts) or a ``modules_to_save`` copy would not be covered.
    The adapter's config is read once, here; the returned check looks at the model as it is
    when the change comes up.
    """
    if spec.peft_type in ROW_TYPES:
        return lambda: True
    config = json.loads((spec.path / "adapter_config.json").read_text())
    if config.get("modules_to_save") or isinstance(config.get("target_modules"), str):
        return lambda: False
    from peft.tuners.lora import LoraLayer

    targets = set(spec.target_modules)

    def covered() -> bool:
        return engine.model is not engine.base and all(
            isinstance(module, LoraLayer)
            for name, module in engine.model.base_model.model.named_modules()
            if name.rsplit(".", 1)[-1] in targets
        )

    return covered
