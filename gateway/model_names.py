"""Model names: the grammar of the OpenAI ``model`` field, the one parser of it in lorag.

``<base>`` | ``<adapter>`` | ``<base-or-adapter>@<kb>``. A name that is itself a served model is
taken whole (so a model id containing ``@`` still works); otherwise the text after the last
``@`` names a knowledge base. :func:`parse` only resolves names against the models served;
whether a knowledge base exists is for the caller to decide. A client of the gateway (``lorag
compare``) does not parse names itself: it asks ``GET /v1/models/{name}``, which answers with
this parser. This module knows nothing about requests, engines or HTTP.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from gateway.errors import model_not_found


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
