"""The gateway's own routes: health, metrics, chat and legacy completions, models, adapter administration.

Routes are thin: they hand the request to the app's :class:`~gateway.api.state.Gateway` services
(:class:`~gateway.api.completions.Completions`, :class:`~gateway.api.adapter_catalog.AdapterCatalog`)
and answer 503 while the engine is not ready. ``router`` is public, ``v1`` needs an API key,
``admin`` an admin key (the app factory attaches the checks). This module knows no protocol
details beyond which model answers which route.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel

from gateway.api.adapter_protocol import AdapterInfo, AdapterList, AdapterRegistration
from gateway.api.auth import principal_of
from gateway.api.model_cards import card, cards
from gateway.api.objects import ChatCompletion, Completion, ModelCard, ModelList
from gateway.api.protocol import ChatCompletionRequest, CompletionRequest
from gateway.api.state import Gateway
from gateway.errors import LoragError
from gateway.knowledge.vector_stores import may_see


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
    return serialized(await completions.respond(body, request))


@v1.post("/completions", response_model=Completion)
async def text_completions(body: CompletionRequest, request: Request):
    """Legacy completions: each prompt is sent as one user turn through the model's chat template."""
    completions, _ = state(request).ready()
    return serialized(await completions.respond(body, request))


def serialized(answer: BaseModel | Response) -> Response:
    """A response object as JSON, serialised once by pydantic: FastAPI would validate it again against the route's
    ``response_model`` (which stays, for the OpenAPI schema) before encoding it."""
    if isinstance(answer, Response):
        return answer
    return Response(answer.model_dump_json(), media_type="application/json")


@v1.get("/models")
async def list_models(request: Request) -> ModelList:
    """The base model, every loaded adapter, and the base model with each knowledge base (``<base>@<kb>``): those
    the caller's key may use."""
    gateway = state(request)
    completions, catalog = gateway.ready()
    engine, principal = completions.engine, principal_of(request)
    kbs = [kb for kb in gateway.knowledge.manifests() if may_see(principal, kb)]
    listed = cards(engine.info.base_model, engine.adapters(), catalog.last.adapters, gateway.started, kbs)
    return ModelList(data=[c for c in listed.data if principal.may_use_model(c.parent if c.knowledge_base else c.id)])


@v1.get("/models/{model:path}")
async def get_model(model: str, request: Request) -> ModelCard:
    completions = state(request).ready()[0]
    ref = completions.resolve(model, principal_of(request))
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
