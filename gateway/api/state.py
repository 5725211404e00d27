"""One app's state: its services, the engine and adapters once started, and why it failed if it did.

:class:`Gateway` is what every route reaches through ``request.app.state.gateway``. The
knowledge service and the compare service work from the start; completions and the adapter
catalog exist once the engine has started (:meth:`Gateway.ready` is 503 until then). This module
knows nothing about routes.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.api.adapter_catalog import AdapterCatalog
from gateway.api.completions import Completions
from gateway.api.metrics import Metrics
from gateway.api.objects import now
from gateway.api.rate_limits import RateLimits
from gateway.compare.service import CompareService
from gateway.errors import LoragError
from gateway.jobs.service import FineTuning
from gateway.knowledge.service import Knowledge
from gateway.settings import Settings
from serve.adapters import AdapterRegistry
from serve.engine import Engine

log = logging.getLogger(__name__)


class Gateway:
    """One app's state: the engine and its adapters once started, metrics, and why it failed if it did."""

    def __init__(self, settings: Settings, knowledge: Knowledge):
        self.settings = settings
        self.knowledge = knowledge
        self.metrics = Metrics()
        self.limits = RateLimits()
        self.started = now()
        self.completions: Completions | None = None
        self.catalog: AdapterCatalog | None = None
        self.compare: CompareService | None = None  # set once the app exists: it talks to the app
        self.fine_tuning: FineTuning | None = None
        self.failure: str | None = None

    async def start(self, engine: Engine, registry: AdapterRegistry) -> None:
        catalog = AdapterCatalog(engine, registry)
        await catalog.refresh()
        self.completions, self.catalog = Completions(engine, self.metrics, self.knowledge, self.limits), catalog
        log.info("serving %s with %d adapters", engine.info.base_model, len(engine.adapters()))

    def base_model(self) -> str:
        """The served base model's name; 503 until the engine has started."""
        return self.ready()[1].engine.info.base_model

    async def serve_trained(self, name: str) -> str | None:
        """Hot-load the adapter a job just wrote (waiting for the engine if it is still starting); why not, if not."""
        while self.catalog is None:
            if self.failure:
                return f"the engine failed to start: {self.failure}"
            await asyncio.sleep(1.0)
        scan = await self.catalog.refresh()
        return None if name in scan.adapters else scan.refused.get(name, "the engine did not load it")

    def ready(self) -> tuple[Completions, AdapterCatalog]:
        if self.completions is None or self.catalog is None:
            state = f"failed to start: {self.failure}" if self.failure else "starting"
            raise LoragError(503, f"the engine is {state}", type="server_error", code="engine_unavailable")
        return self.completions, self.catalog
