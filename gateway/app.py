"""The FastAPI app: OpenAI-compatible routes, health, metrics, adapter administration and knowledge bases.

:func:`create_app` takes a ready engine and its adapter registry, or an async function that
starts them (``lorag serve`` passes one, so the server answers ``/healthz`` with 503 while vLLM
boots). Once the engine is there, the adapters are synced and ``/healthz`` turns 200; a
background task rescans the adapters folder every ``adapter_refresh_s``. Routes are thin: they
check the API key and hand the request to :class:`~gateway.chat.Completions`,
:class:`~gateway.adapters.AdapterCatalog` or :class:`~gateway.knowledge.Knowledge` (whose routes
are in :mod:`gateway.knowledge_api`; they work while the engine is still starting). Completions
beyond ``max_concurrent_requests`` are answered 429 before any work. The app closes an engine
it started, never one it was given. The web console (:mod:`gateway.console`) answers at ``/``.
This module knows no protocol details beyond which model answers which route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from gateway import auth, compare_api, console, errors, knowledge_api
from gateway.adapters import AdapterCatalog
from gateway.chat import Completions
from gateway.errors import LoragError, overloaded
from gateway.knowledge import Knowledge
from gateway.metrics import Metrics
from gateway.models import card, cards
from gateway.protocol import (
    AdapterInfo,
    AdapterList,
    AdapterRegistration,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    now,
)
from gateway.settings import Settings
from rag.store import KnowledgeBases
from serve.adapters import AdapterRegistry
from serve.engine import Engine

log = logging.getLogger(__name__)
Starter = Callable[[], Awaitable[tuple[Engine, AdapterRegistry]]]
COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 429, 503)}
FILE_ERRORS = {status: {"model": ErrorResponse} for status in (413, 415)}


class Gateway:
    """One app's state: the engine and its adapters once started, metrics, and why it failed if it did."""

    def __init__(self, settings: Settings, knowledge: Knowledge):
        self.settings = settings
        self.knowledge = knowledge
        self.metrics = Metrics()
        self.started = now()
        self.completions: Completions | None = None
        self.catalog: AdapterCatalog | None = None
        self.failure: str | None = None

    async def start(self, engine: Engine, registry: AdapterRegistry) -> None:
        catalog = AdapterCatalog(engine, registry)
        await catalog.refresh()
        self.completions, self.catalog = Completions(engine, self.metrics, self.knowledge), catalog
        log.info("serving %s with %d adapters", engine.info.base_model, len(engine.adapters()))

    def ready(self) -> tuple[Completions, AdapterCatalog]:
        if self.completions is None or self.catalog is None:
            state = f"failed to start: {self.failure}" if self.failure else "starting"
            raise LoragError(503, f"the engine is {state}", type="server_error", code="engine_unavailable")
        return self.completions, self.catalog


def create_app(
    engine: Engine | Starter,
    registry: AdapterRegistry | None = None,
    settings: Settings | None = None,
    knowledge_bases: KnowledgeBases | None = None,
) -> FastAPI:
    """The gateway over ``engine`` and ``registry``, or over what the async function ``engine`` starts.

    ``knowledge_bases``: default, the folder ``settings.kb_dir`` with ``settings.embedder``.
    """
    settings = settings or Settings()
    bases = knowledge_bases or KnowledgeBases(settings.kb_dir, default_embedder=settings.embedder)
    gateway = Gateway(settings, Knowledge(bases, int(settings.max_upload_mb * 2**20)))
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
        yield
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
    app.state.keys = auth.ApiKeys(settings.api_keys, settings.admin_keys)
    errors.install(app)
    app.add_middleware(Admission, limit=settings.max_concurrent_requests, metrics=gateway.metrics)
    app.include_router(router)
    app.include_router(v1, prefix="/v1", dependencies=[Depends(auth.user)], responses=ERRORS)
    app.include_router(admin, prefix="/v1", dependencies=[Depends(auth.admin)], responses=ERRORS | {403: ERRORS[401]})
    user, admin_only = [Depends(auth.user)], ERRORS | {403: ERRORS[401], 409: ERRORS[400]}
    app.include_router(knowledge_api.reads, prefix="/v1", dependencies=user, responses=ERRORS)
    app.include_router(knowledge_api.writes, prefix="/v1", dependencies=user, responses=admin_only | FILE_ERRORS)
    app.include_router(knowledge_api.embeddings, prefix="/v1", dependencies=user, responses=ERRORS)
    app.include_router(compare_api.router, prefix="/v1", dependencies=[Depends(auth.user)], responses=ERRORS)
    console.mount(app)
    return app


class Admission:
    """ASGI middleware: completions beyond ``limit`` in flight are answered 429 with Retry-After (0: no limit)."""

    def __init__(self, app, limit: int, metrics: Metrics):
        self.app, self.limit, self.metrics = app, limit, metrics
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in COMPLETION_PATHS:
            return await self.app(scope, receive, send)
        if self.limit and self.in_flight >= self.limit:
            self.metrics.rejected.labels("overloaded").inc()
            return await overloaded(self.limit).response()(scope, receive, send)
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()


def state(request: Request) -> Gateway:
    return request.app.state.gateway


router = APIRouter()
v1 = APIRouter(tags=["OpenAI"])
admin = APIRouter(tags=["adapters"])


@router.get("/healthz", tags=["operations"])
async def healthz(request: Request) -> JSONResponse:
    """200 once the engine can serve; 503 while it starts or after it failed to."""
    gateway = state(request)
    if gateway.completions is None:
        body = {"status": "failed", "error": gateway.failure} if gateway.failure else {"status": "starting"}
        return JSONResponse(body, status_code=503)
    engine = gateway.completions.engine
    return JSONResponse({"status": "ok", "model": engine.info.base_model, "adapters": len(engine.adapters())})


@router.get("/metrics", tags=["operations"])
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    gateway = state(request)
    return Response(gateway.metrics.render(), media_type=gateway.metrics.content_type)


@v1.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    """A chat completion on the base model or an adapter; ``stream: true`` for server-sent events."""
    completions, _ = state(request).ready()
    return await completions.respond(body, request)


@v1.post("/completions", response_model=Completion)
async def text_completions(body: CompletionRequest, request: Request):
    """Legacy completions: each prompt is sent as one user turn through the model's chat template."""
    completions, _ = state(request).ready()
    return await completions.respond(body, request)


@v1.get("/models")
async def list_models(request: Request) -> ModelList:
    """The base model, every loaded adapter, and the base model with each knowledge base (``<base>@<kb>``)."""
    gateway = state(request)
    completions, catalog = gateway.ready()
    engine = completions.engine
    kbs = gateway.knowledge.manifests()
    return cards(engine.info.base_model, engine.adapters(), catalog.last.adapters, gateway.started, kbs)


@v1.get("/models/{model:path}")
async def get_model(model: str, request: Request) -> ModelCard:
    completions = state(request).ready()[0]
    ref = completions.resolve(model)
    return card(ref, completions.engine.info.base_model, await list_models(request))


@admin.get("/adapters")
async def list_adapters(request: Request) -> AdapterList:
    """Loaded adapters with a summary of their lorag.json, and refused ones with the reason."""
    return state(request).ready()[1].listing()


@admin.post("/adapters", status_code=201)
async def register_adapter(body: AdapterRegistration, request: Request) -> AdapterInfo:
    """Validate the adapter folder at ``path`` on the server and hot-load it; the folder stays where it is."""
    return await state(request).ready()[1].register(body.name, body.path)


@admin.delete("/adapters/{name}", status_code=204)
async def delete_adapter(name: str, request: Request) -> Response:
    """Unload a registered adapter (folder adapters go away with their folder)."""
    await state(request).ready()[1].unregister(name)
    return Response(status_code=204)


@admin.get("/adapters/{name}/loss_curve.png", response_class=FileResponse)
async def adapter_loss_curve(name: str, request: Request) -> FileResponse:
    """The training loss curve the tuner saved in a served adapter's folder (404 if it saved none)."""
    spec = state(request).ready()[1].last.adapters.get(name)
    if spec is None:
        raise LoragError(404, f"no adapter named '{name}' is served", code="adapter_not_found")
    curve = spec.path / "loss_curve.png"
    if not curve.is_file():
        raise LoragError(404, f"adapter '{name}' has no loss_curve.png", code="loss_curve_not_found")
    return FileResponse(curve, media_type="image/png")
