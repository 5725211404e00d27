"""The FastAPI app: OpenAI-compatible routes, health, metrics, adapter administration and knowledge bases.

:func:`create_app` takes a ready engine and its adapter registry, or an async function that
starts them (``lorag serve`` passes one, so the server answers ``/healthz`` with 503 while vLLM
boots). Once the engine is there, the adapters are synced and ``/healthz`` turns 200; a
background task rescans the adapters folder every ``adapter_refresh_s``. Routes are thin: they
check the API key and hand the request to :class:`~gateway.api.completions.Completions`,
:class:`~gateway.api.adapter_catalog.AdapterCatalog` or :class:`~gateway.knowledge.service.Knowledge` (whose routes
are in :mod:`gateway.api.knowledge_routes`; they work while the engine is still starting). Completions
beyond ``max_concurrent_requests`` are answered 429 before any work. The app closes an engine
it started, never one it was given. The web console (:mod:`gateway.console.route`) answers at ``/``.
This module knows no protocol details beyond which model answers which route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI
from openai import AsyncOpenAI

from gateway.api import auth, compare_routes, error_handlers, jobs_routes, knowledge_routes, routes, vector_store_routes
from gateway.api.admission import Admission
from gateway.api.completion_route import CompletionRoute
from gateway.api.objects import ErrorResponse
from gateway.api.state import Gateway
from gateway.compare.service import CompareService, allowed_url
from gateway.console import route as console
from gateway.grading import routes as grading_routes
from gateway.grading.service import Grading
from gateway.jobs.judges import Judges
from gateway.jobs.service import FineTuning
from gateway.knowledge.service import Knowledge
from gateway.responses import routes as responses_routes
from gateway.responses.service import Responses
from gateway.responses.store import ResponseStore
from gateway.settings import Settings
from graders.sandbox import Limits
from rag.store import KnowledgeBases
from serve.adapters import AdapterRegistry
from serve.engine import Engine
from serve.models import prepare

log = logging.getLogger(__name__)
Starter = Callable[[], Awaitable[tuple[Engine, AdapterRegistry]]]
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 405, 408, 413, 429, 503)}
LOCAL = "http://lorag.internal"  # the base URL of the app talking to itself
FILE_ERRORS = {status: {"model": ErrorResponse} for status in (413, 415)}


def create_app(
    engine: Engine | Starter,
    registry: AdapterRegistry | None = None,
    settings: Settings | None = None,
    knowledge_bases: KnowledgeBases | None = None,
    base_model_dir: Path | None = None,
) -> FastAPI:
    """The gateway over ``engine`` and ``registry``, or over what the async function ``engine`` starts.

    ``knowledge_bases``: default, the folder ``settings.kb_dir`` with ``settings.embedder``.
    ``base_model_dir``: the prepared folder of the served base model, which fine-tuning jobs train;
    default, ``settings.base_model`` prepared into ``settings.cache_dir`` when the first job trains.
    """
    settings = settings or Settings()
    gateway = Gateway(settings, Knowledge.from_settings(settings, knowledge_bases))
    if not callable(engine) and registry is None:
        raise TypeError("create_app needs the adapter registry that goes with a ready engine")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned: list[Engine] = []  # an engine the app started, so closes

        async def boot() -> None:
            try:
                if callable(engine):
                    ready, ready_registry = await engine()
                    owned.append(ready)
                else:
                    ready, ready_registry = engine, registry
                await gateway.start(ready, ready_registry)
            except Exception as e:
                gateway.failure = f"{type(e).__name__}: {e}"
                log.exception("the engine failed to start")
                return
            if settings.adapter_refresh_s:
                await gateway.catalog.poll(settings.adapter_refresh_s)

        task = asyncio.create_task(boot())
        await gateway.fine_tuning.start()
        yield
        await gateway.fine_tuning.close()
        app.state.responses.store.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for started in owned:
            await started.close()

    app = FastAPI(
        title="lorag",
        summary="OpenAI-compatible gateway: one base model, many LoRA adapters.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    gateway.compare = CompareService(
        Path(settings.reports_dir),
        partial(self_client, app),
        outbound=tuple(settings.outbound_urls),
        adapters_dir=settings.adapters_dir,
        cache_dir=settings.cache_dir,
    )
    bases = gateway.knowledge.bases
    app.state.grading = Grading(
        lambda texts: bases.embedder(bases.default_embedder).embed(texts).tolist(), partial(self_client, app),
        settings.allow_python_graders, Limits(settings.python_grader_cpu_s, settings.python_grader_timeout_s,
                                              settings.python_grader_memory_mb), tuple(settings.outbound_urls),
    )  # fmt: skip
    cache = settings.cache_dir.expanduser()
    judges = Judges(settings.self_url, partial(allowed_url, prefixes=tuple(settings.outbound_urls)))
    gateway.fine_tuning = FineTuning(
        settings.jobs_dir, settings.adapters_dir, cache, gateway.base_model,
        (lambda: base_model_dir) if base_model_dir else partial(prepare, settings.base_model, cache),
        gateway.serve_trained, int(settings.max_training_file_mb * 2**20), settings.max_training_jobs,
        int(settings.max_stored_mb_per_key * 2**20), settings.allow_python_graders, judges, gateway.knowledge,
    )  # fmt: skip
    store = ResponseStore(settings.responses_dir / "responses.sqlite", settings.responses_retention_days)
    app.state.responses = Responses(store, gateway.knowledge)
    entries = auth.read_key_file(settings.keys_file) if settings.keys_file else []
    app.state.keys = auth.ApiKeys(settings.api_keys, settings.admin_keys, entries, judges)
    error_handlers.install(app)
    app.add_middleware(CompletionRoute)  # inside Admission: what it admits, it answers (or hands to the routes)
    app.add_middleware(
        Admission, keys=app.state.keys, limits=gateway.limits, metrics=gateway.metrics,
        limit=settings.max_concurrent_requests, body_timeout_s=settings.body_timeout_s,
        max_body_bytes=int(settings.max_request_mb * 2**20),
    )  # fmt: skip
    app.include_router(routes.router)
    app.include_router(routes.v1, prefix="/v1", dependencies=[Depends(auth.user)], responses=ERRORS)
    app.include_router(
        routes.admin, prefix="/v1", dependencies=[Depends(auth.admin)], responses=ERRORS | {403: ERRORS[401]}
    )
    user, admin_only = [Depends(auth.user)], ERRORS | {403: ERRORS[401], 409: ERRORS[400]}
    app.include_router(knowledge_routes.reads, prefix="/v1", dependencies=user, responses=ERRORS)
    app.include_router(knowledge_routes.writes, prefix="/v1", dependencies=user, responses=admin_only | FILE_ERRORS)
    app.include_router(knowledge_routes.embeddings, prefix="/v1", dependencies=user, responses=ERRORS)
    app.include_router(vector_store_routes.router, prefix="/v1", dependencies=user, responses=admin_only)
    app.include_router(
        compare_routes.router, prefix="/v1", dependencies=[Depends(auth.user)], responses=ERRORS | {409: ERRORS[400]}
    )
    app.include_router(responses_routes.router, prefix="/v1", dependencies=user, responses=ERRORS)
    app.include_router(jobs_routes.reads, prefix="/v1", dependencies=user, responses=ERRORS)
    app.include_router(jobs_routes.writes, prefix="/v1", responses=admin_only | FILE_ERRORS)
    app.include_router(grading_routes.router, prefix="/v1", dependencies=user, responses=ERRORS)
    console.mount(app)
    return app


def self_client(app: FastAPI, api_key: str | None) -> AsyncOpenAI:
    """An OpenAI client of ``app`` itself, in process (``httpx.ASGITransport``), authenticated with ``api_key``."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a failure is a 500, as over HTTP
    http = httpx.AsyncClient(transport=transport, base_url=LOCAL, timeout=None)
    return AsyncOpenAI(base_url=f"{LOCAL}/v1", api_key=api_key or "none", http_client=http, max_retries=0)
