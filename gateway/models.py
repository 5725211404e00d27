"""Model names: the grammar of the OpenAI ``model`` field, and the list ``GET /v1/models`` returns.

``<base>`` | ``<adapter>`` | ``<base-or-adapter>@<kb>``. A name that is itself a served model is
taken whole (so a model id containing ``@`` still works); otherwise the text after the last
``@`` names a knowledge base. :func:`parse` only resolves names against the models served;
whether a knowledge base exists is for the caller to decide. This module knows nothing about
requests, engines or HTTP.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway.errors import model_not_found
from gateway.protocol import ModelCard, ModelList
from rag.store import Manifest
from serve.adapters import AdapterSpec


@dataclass(frozen=True)
class ModelRef:
    """What a ``model`` field asks for."""

    name: str  # as the client wrote it: echoed in responses, the label in metrics
    adapter: str | None  # None: the base model
    kb: str | None = None  # the knowledge base after '@', if any


def parse(name: str, base: str, adapters: Collection[str]) -> ModelRef:
    """Resolve ``name`` against the base model and the loaded adapters; 404 ``model_not_found`` otherwise."""
    if name == base or name in adapters:
        return ModelRef(name, None if name == base else name)
    arm, at, kb = name.rpartition("@")
    if at and arm and kb and (arm == base or arm in adapters):
        return ModelRef(name, None if arm == base else arm, kb)
    raise model_not_found(
        f"The model '{arm if at and arm and kb else name}' does not exist: "
        f"use the base model '{base}' or an adapter listed by GET /v1/models"
    )


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
    data += [ModelCard(id=f"{base}@{kb.name}", created=kb.created, root=base, parent=base) for kb in kbs]
    return ModelList(data=data)


def card(ref: ModelRef, base: str, listed: ModelList) -> ModelCard:
    """The card of a resolved model name: listed, or (``<adapter>@<kb>``) made from its adapter's card."""
    by_id = {c.id: c for c in listed.data}
    if ref.name in by_id:
        return by_id[ref.name]
    arm = by_id[ref.adapter or base]
    return arm.model_copy(update={"id": ref.name, "parent": arm.id})


def _timestamp(iso: object) -> int | None:
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp())
    except ValueError:
        return None
