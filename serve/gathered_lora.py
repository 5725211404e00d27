"""Per-row LoRA for mixed batches: each row's adapter in two batched matmuls per layer (the BGMV idea of Punica).

PEFT runs a mixed batch (``adapter_names``) by looping, in every adapted layer, over the adapters
the batch holds: an index, two matmuls and a scatter for each. On a CPU those small steps, 210
layers of SmolLM2 times the adapters present, cost as much as the base model itself. Here each
adapted linear layer keeps its adapters' weights stacked, A as ``(slots, in, r)`` and B, already
scaled, as ``(slots, r, out)``, slot 0 all zeros for rows on the base model. A batch gathers its
rows' slots once, before generation; every forward pass then adds ``(x @ A[row]) @ B[row]`` to the
base layer's output with one ``bmm`` and one ``baddbmm``, whatever the mix of adapters. A batch
on the base model alone adds nothing.

Plain LoRA on linear layers only: :meth:`GatheredLora.supports` says no to DoRA, LoRA biases,
embedding or convolution targets and ``modules_to_save``, whose batches keep PEFT's own path.
Ranks may differ between adapters and layers (``rank_pattern``); smaller ones are padded with
zeros. The stacks are rebuilt on the first batch after an adapter is loaded or deleted. This
module knows nothing about requests, threads or the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer

PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class _Stack:
    layer: LoraLinear
    a: torch.Tensor  # (slots, in, r)
    b: torch.Tensor  # (slots, r, out), scaling folded in


@dataclass(frozen=True)
class _Stacks:
    slots: dict[str, int]  # adapter key -> its slot; 0 is the base model
    layers: tuple[_Stack, ...]


class GatheredLora:
    """The stacked LoRA weights of one ``PeftModel``; see the module docstring."""

    def __init__(self) -> None:
        self._stacks: _Stacks | None = None
        self._supported: dict[str, bool] = {}

    def invalidate(self) -> None:
        """Forget the stacks: an adapter was loaded into the model or deleted from it."""
        self._stacks = None
        self._supported.clear()

    def supports(self, model, key: str) -> bool:
        """Whether adapter ``key`` of ``model`` (a ``PeftModel``) is plain LoRA on linear layers only."""
        if key not in self._supported:
            self._supported[key] = _plain(model, key)
        return self._supported[key]

    def for_batch(self, model, keys: list[str | None]) -> tuple[AbstractContextManager, dict]:
        """The context to run a batch in and the ``generate`` arguments that give row ``i`` adapter ``keys[i]``
        (None: the base model): gathered when every adapter is supported, else PEFT's own ``adapter_names``."""
        if all(self.supports(model, key) for key in keys if key):
            return self.applied(model, keys), {}
        return nullcontext(), {"adapter_names": [key or PEFT_BASE for key in keys]}

    def applied(self, model, keys: list[str | None]):
        """A context in which ``model``'s forward passes add row ``i``'s adapter ``keys[i]`` (None: the base) to it.

        Every key must be :meth:`supported <supports>`."""
        if not any(keys):
            return model.disable_adapter()
        return self._applied(model, keys)

    @contextmanager
    def _applied(self, model, keys: list[str | None]) -> Iterator[None]:
        stacks = self._stacks if self._stacks is not None else self._build(model)
        device = stacks.layers[0].a.device if stacks.layers else None
        rows = torch.tensor([stacks.slots[key] if key else 0 for key in keys], device=device)
        handles = []
        with model.disable_adapter():
            try:
                for stack in stacks.layers:
                    a, b = stack.a[rows], stack.b[rows]
                    if b.any():  # else no row's adapter touches this layer
                        handles.append(stack.layer.register_forward_hook(_AddRows(a, b)))
                yield
            finally:
                for handle in handles:
                    handle.remove()

    def _build(self, model) -> _Stacks:
        keys = sorted(key for key in model.peft_config if self.supports(model, key))
        slots = {key: slot for slot, key in enumerate(keys, start=1)}
        layers = []
        for layer in model.modules():
            if not isinstance(layer, LoraLinear) or not (present := [k for k in keys if k in layer.lora_A]):
                continue
            rank = max(layer.r[k] for k in present)
            first = layer.lora_A[present[0]].weight
            a = first.new_zeros((len(slots) + 1, layer.in_features, rank))
            b = first.new_zeros((len(slots) + 1, rank, layer.out_features))
            with torch.no_grad():
                for key in present:
                    r = layer.r[key]
                    a[slots[key], :, :r] = layer.lora_A[key].weight.T
                    b[slots[key], :r] = layer.lora_B[key].weight.T * layer.scaling[key]
            layers.append(_Stack(layer, a, b))
        self._stacks = _Stacks(slots, tuple(layers))
        return self._stacks


def _plain(model, key: str) -> bool:
    config = model.peft_config[key]
    if config.modules_to_save or getattr(config, "use_dora", False) or getattr(config, "lora_bias", False):
        return False
    return all(
        isinstance(layer, LoraLinear) and not layer.use_dora.get(key) and not layer.lora_bias.get(key)
        for layer in model.modules()
        if isinstance(layer, LoraLayer) and (key in layer.lora_A or key in layer.lora_embedding_A)
    )


@dataclass(frozen=True)
class _AddRows:
    """Forward hook on a LoRA layer whose adapters are disabled: its output plus each row's ``x @ A @ B``."""

    a: torch.Tensor  # (batch, in, r)
    b: torch.Tensor  # (batch, r, out)

    def __call__(self, module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0].to(self.a.dtype)  # the LoRA's dtype (PEFT keeps it float32 beside bfloat16 weights)
        return torch.baddbmm(output.to(self.a.dtype), torch.bmm(x, self.a), self.b).to(output.dtype)
