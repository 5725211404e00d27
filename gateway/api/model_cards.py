"""The cards of ``GET /v1/models``: the base model, its adapters, and its knowledge-base arms.

This module knows nothing about requests or engines beyond the names they serve.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from gateway.api.objects import ModelCard, ModelList
from gateway.model_names import ModelRef
from rag.folder import Manifest
from serve.adapters import AdapterSpec


def cards(
    base: str, loaded: Collection[str], specs: Mapping[str, AdapterSpec], started: int, kbs: Collection[Manifest] = ()
) -> ModelList:
    """The base model, every loaded adapter, then ``<base>@<kb>`` for each knowledge base.

    ``root`` is always the base model; ``parent`` is the base model for an adapter and the model
    before the '@' for a retrieval arm. ``<adapter>@<kb>`` is served but not listed.
    """
    data = [ModelCard(id=base, created=started, root=base)]
    for name in sorted(loaded):
        spec = specs.get(name)
        created = _timestamp(spec.manifest.get("created")) if spec else None
        data.append(ModelCard(id=name, created=created or started, root=base, parent=base))
    data += [
        ModelCard(id=f"{base}@{kb.name}", created=kb.created, root=base, parent=base, knowledge_base=kb.name)
        for kb in kbs
    ]
    return ModelList(data=data)


def card(ref: ModelRef, base: str, listed: ModelList) -> ModelCard:
    """The card of a resolved model name: listed, or (``<adapter>@<kb>``) made from its adapter's card."""
    by_id = {c.id: c for c in listed.data}
    if ref.name in by_id:
        return by_id[ref.name]
    arm = by_id[ref.adapter or base]
    return arm.model_copy(update={"id": ref.name, "parent": arm.id, "knowledge_base": ref.kb})


def _timestamp(iso: object) -> int | None:
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp())
    except ValueError:
        return None
