"""Prepare the configured base model and start its engine: what ``lorag serve``, ``lorag finetune`` and
``lorag compare`` share.

A failure the user can fix (an unknown engine name, a base model that cannot be prepared) ends
the command with one line on stderr. This module knows nothing about routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from gateway.cli.common import fail
from gateway.settings import get_settings
from serve import engines
from serve.adapters import AdapterRegistry
from serve.models import ModelPrepareError, PreparedModel, prepare

log = logging.getLogger(__name__)


def prepare_or_fail(model: str, force: bool = False) -> Path:
    try:
        return prepare(model, get_settings().cache_dir, force=force)
    except ModelPrepareError as e:
        fail(str(e))


def engine_starter(engine: str | None, on_failure: Callable[[], None] | None = None):
    """Prepare the configured base model now; return the async function that starts its engine and registry.

    ``engine``: auto, vllm or local (default: ``LORAG_ENGINE``); ``on_failure`` runs if the engine fails to start.
    """
    settings = get_settings()
    kind = engine or settings.engine
    try:
        engines.check_choice(kind)
    except ValueError as e:
        fail(str(e))
    model_dir = prepare_or_fail(settings.base_model)
    base = PreparedModel.read(model_dir)

    async def start():
        began = time.monotonic()
        try:
            started = await engines.load_engine(
                kind, model_dir, base.id, settings.vllm_urls or None, settings.vllm_args or None
            )
        except Exception:
            if on_failure is not None:
                on_failure()
            raise
        log.info("%s engine started in %.1f s", type(started).__name__, time.monotonic() - began)
        return started, AdapterRegistry(settings.adapters_dir, base.id, base.sha256, started.info.limits)

    return start
