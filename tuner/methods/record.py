"""The record of one training method: what lorag knows about a method, declared in one place.

A :class:`Method` names its TRL config class (imported only when asked for), lorag's starting values for that
config, the shape of the data it trains on, whether it trains a model that scores answers instead of one that
chats, and the module whose ``run`` trains it. The records of :mod:`tuner.methods` are built from it; the recipe
(:mod:`tuner.config`), TRL's config (:mod:`tuner.trl_args`), the checks (:mod:`tuner.checks`) and the trainers
read them. This module imports nothing but the standard library and knows nothing about recipes, data or models.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

DataShape = Literal["chats", "pairs", "labelled", "prompts"]
"""What a method trains on: ``chats`` (chats, text or labelled rows, :mod:`tuner.formats`), ``pairs`` (prompt,
chosen, rejected), ``labelled`` (prompt, completion, desirable or not: :mod:`tuner.preferences`) or ``prompts``
to sample answers to (:mod:`tuner.prompts`)."""


@dataclass(frozen=True)
class Method:
    """One training method: a recipe's ``method``, on TRL's trainer of that name."""

    name: str
    """The recipe's ``method``."""
    trl_config: tuple[str, str]
    """TRL's config class as (module, class name); a recipe may set any of its fields."""
    data: DataShape
    """The data it trains on."""
    trainer: str
    """The module whose ``run(recipe, model_dir, adapters_dir, runs_dir, cache_dir)`` trains it."""
    defaults: Mapping[str, object] = field(default_factory=dict)
    """lorag's starting values for fields of the TRL config, over TRL's own (a recipe overrides any)."""
    scores: bool = False
    """It trains a reward model (a one-output score head) that scores answers: not a chat adapter to serve."""

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def paired(self) -> bool:
        """Whether it trains on preference pairs."""
        return self.data == "pairs"

    def config_class(self) -> type:
        """TRL's config class (TRL is imported now, not before)."""
        module, name = self.trl_config
        return getattr(importlib.import_module(module), name)
