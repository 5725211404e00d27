"""Prompt tuning, P-tuning, prefix tuning and IA3 applied row by row, so they share LocalEngine's mixed batches.

PEFT applies these adapter types to a whole batch, one adapter at a time, and cannot hold them
next to LoRA adapters in one model. LocalEngine batches requests for different adapters
together, so this module applies each row's adapter to that row only, over the one copy of the
base weights, and leaves base and LoRA rows as they are (LoRA rows are PEFT's ``adapter_names``):

- **prompt tuning** and **P-tuning**: the row's prompt gets one placeholder slot per virtual
  token in front of it; a forward hook on the input embeddings writes the learned embeddings
  (for P-tuning, what its prompt encoder made of them, computed once) into those slots at
  prefill, which is what PEFT does by prepending them to ``inputs_embeds``.
- **prefix tuning**: the learned keys and values start the row's KV cache, so every layer
  attends to them; rows with a shorter prefix or none get masked slots. Positions come from the
  attention mask, so a row's first token sits right after its own prefix, as in PEFT.
- **IA3**: forward hooks on the adapted modules multiply the row's output (or, for feed-forward
  modules, its input) by the learned vectors; other rows are multiplied by one.

The learned tensors are read once, when the adapter loads: the prompt and prefix from PEFT's own
``get_prompt`` (a PEFT wrapper around the base model that shares its weights and is then
dropped), the IA3 vectors from the adapter's weights file. This module knows nothing about
requests, streaming or the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DynamicCache

ROW_TYPES = frozenset({"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "IA3"})


@dataclass(frozen=True)
class PromptTuning:
    """A prompt-tuning adapter: its learned virtual-token embeddings."""

    embeddings: torch.Tensor  # (virtual tokens, hidden size): written in front of the prompt's embeddings


@dataclass(frozen=True)
class PrefixTuning:
    """A prefix-tuning adapter: its learned keys and values, as PEFT puts them into the KV cache."""

    layers: tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]  # per layer (keys, values), each (heads, P, dim)
    length: int  # P, the virtual tokens


@dataclass(frozen=True)
class IA3:
    """An IA3 adapter: its learned vectors by module path, relative to the transformers model."""

    inputs: dict[str, torch.Tensor]  # module path -> vector scaling its input (feed-forward modules)
    outputs: dict[str, torch.Tensor]  # module path -> vector scaling its output


RowAdapter = PromptTuning | PrefixTuning | IA3


def load_row_adapter(path: Path, model: torch.nn.Module) -> RowAdapter:
    """Read a prompt-tuning, prefix-tuning or IA3 adapter folder for ``model`` (a transformers model)."""
    from peft import PeftConfig, PeftModel, PeftType

    config = PeftConfig.from_pretrained(str(path))
    if config.peft_type == PeftType.IA3:
        return _load_ia3(path, config, model)
    if config.peft_type not in (PeftType.PROMPT_TUNING, PeftType.P_TUNING, PeftType.PREFIX_TUNING):
        raise ValueError(f"PEFT type {config.peft_type} is not served row by row")
    wrapper = PeftModel.from_pretrained(model, str(path))  # adds only the prompt encoder; the base is shared
    with torch.no_grad():
        prompt = wrapper.get_prompt(batch_size=1, max_cache_len=-1)
    if config.peft_type in (PeftType.PROMPT_TUNING, PeftType.P_TUNING):  # P-tuning's encoder made these tokens
        return PromptTuning(prompt[0].detach())
    layers = tuple(
        (layer.keys[0].detach(), layer.values[0].detach()) if layer.is_initialized else None for layer in prompt.layers
    )
    return PrefixTuning(layers, config.num_virtual_tokens)


def _load_ia3(path: Path, config, model: torch.nn.Module) -> IA3:
    from peft import IA3Model
    from peft.utils import load_peft_weights

    device = next(model.parameters()).device
    inputs, outputs = {}, {}
    for key, vector in load_peft_weights(str(path), device=str(device)).items():
        module = key.removeprefix("base_model.model.").removesuffix(".ia3_l")
        model.get_submodule(module)  # an adapter for another architecture fails here, at load time
        feedforward = IA3Model._check_target_module_feedforward(config, module)  # PEFT's own rule
        (inputs if feedforward else outputs)[module] = vector.flatten()
    if not inputs and not outputs:
        raise ValueError("the adapter holds no IA3 vectors")
    return IA3(inputs, outputs)


@dataclass
class BatchInputs:
    """What ``generate`` needs for one mixed batch, and the hooks to apply while it runs."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    past_key_values: DynamicCache | None
    rows: list[RowAdapter | None]
    starts: list[int]  # where each row's first slot (a placeholder, or the prompt) sits after the padding

    def generate_kwargs(self) -> dict:
        kwargs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.past_key_values is not None:
            kwargs["past_key_values"] = self.past_key_values
        return kwargs

    @contextmanager
    def hooks(self, model: torch.nn.Module) -> Iterator[None]:
        """Register the prompt-tuning and IA3 hooks on ``model`` for the duration of one ``generate``."""
        handles = []
        prompts = {i: row.embeddings for i, row in enumerate(self.rows) if isinstance(row, PromptTuning)}
        ia3 = [row if isinstance(row, IA3) else None for row in self.rows]
        try:
            if prompts:
                hook = _VirtualTokens(prompts, self.starts)
                handles.append(model.get_input_embeddings().register_forward_hook(hook))
            for path, scale in _ia3_scales(ia3, "inputs").items():
                handles.append(model.get_submodule(path).register_forward_pre_hook(_ScaleInput(scale)))
            for path, scale in _ia3_scales(ia3, "outputs").items():
                handles.append(model.get_submodule(path).register_forward_hook(_ScaleOutput(scale)))
            yield
        finally:
            for handle in handles:
                handle.remove()


def batch_inputs(
    model: torch.nn.Module, prompts: list[list[int]], rows: list[RowAdapter | None], pad_id: int
) -> BatchInputs:
    """Left-padded ids and mask for ``prompts``, with each row's prompt-tuning slots and prefix cache."""
    slots = [row.embeddings.shape[0] if isinstance(row, PromptTuning) else 0 for row in rows]
    ids = [[pad_id] * n + prompt for n, prompt in zip(slots, prompts, strict=True)]  # placeholders, then the prompt
    width = max(len(row) for row in ids)
    starts, device = [width - len(row) for row in ids], model.device  # the batch lives where the weights do
    input_ids = torch.tensor([[pad_id] * start + row for start, row in zip(starts, ids, strict=True)], device=device)
    mask = [[0] * start + [1] * len(row) for start, row in zip(starts, ids, strict=True)]
    attention_mask = torch.tensor(mask, device=device)
    prefixes = [row if isinstance(row, PrefixTuning) else None for row in rows]
    cache = None
    if any(prefixes):
        cache, prefix_mask = _prefix_cache(model, prefixes)
        attention_mask = torch.cat([prefix_mask, attention_mask], dim=1)
    return BatchInputs(input_ids, attention_mask, cache, rows, starts)


def _prefix_cache(model: torch.nn.Module, prefixes: list[PrefixTuning | None]) -> tuple[DynamicCache, torch.Tensor]:
    """A KV cache holding each row's prefix, right-aligned in ``max P`` slots, and the mask of those slots."""
    slots = max(p.length for p in prefixes if p)
    mask = torch.zeros(len(prefixes), slots, dtype=torch.long, device=model.device)
    for row, prefix in enumerate(prefixes):
        if prefix:
            mask[row, slots - prefix.length :] = 1
    cache = DynamicCache(config=model.config)
    first = next(p for p in prefixes if p)
    for layer in range(len(first.layers)):
        kv = [p.layers[layer] if p else None for p in prefixes]
        template = next((t for t in kv if t is not None), None)
        if template is None:  # a layer PEFT leaves without a prefix (shared-KV layers)
            continue
        keys, values = (t.new_zeros((len(prefixes), t.shape[0], slots, t.shape[2])) for t in template)
        for row, tensors in enumerate(kv):
            if tensors is not None:
                keys[row, :, slots - tensors[0].shape[1] :] = tensors[0]
                values[row, :, slots - tensors[1].shape[1] :] = tensors[1]
        cache.update(keys, values, layer, cache_kwargs={"cache_position": torch.arange(slots, device=model.device)})
    return cache, mask


def _ia3_scales(rows: list[IA3 | None], side: str) -> dict[str, torch.Tensor]:
    """Per module: a (batch, 1, features) tensor of each row's vector, ones for rows without one."""
    scales = {}
    for row, adapter in enumerate(rows):
        for path, vector in (getattr(adapter, side) if adapter else {}).items():
            if path not in scales:
                scales[path] = vector.new_ones((len(rows), 1, vector.shape[0]))
            scales[path][row, 0] = vector
    return scales


@dataclass
class _VirtualTokens:
    """Forward hook on the input embeddings: fill the placeholder slots at prefill, then stand aside."""

    prompts: dict[int, torch.Tensor]
    starts: list[int]
    done: bool = False

    def __call__(self, module, args, output: torch.Tensor) -> torch.Tensor | None:
        if self.done:
            return None
        self.done = True
        output = output.clone()
        for row, embeddings in self.prompts.items():
            start = self.starts[row]
            output[row, start : start + embeddings.shape[0]] = embeddings.to(output.dtype)
        return output


@dataclass
class _ScaleInput:
    """IA3 on a feed-forward module: ``module(x * l)``, computed as PEFT does."""

    scale: torch.Tensor

    def __call__(self, module, args: tuple) -> tuple:
        x = args[0]
        return ((x.to(self.scale.dtype) * self.scale).to(x.dtype), *args[1:])


@dataclass
class _ScaleOutput:
    """IA3 on any other module: ``module(x) * l``."""

    scale: torch.Tensor

    def __call__(self, module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return (output * self.scale).to(output.dtype)
