"""The Responses API's routes: create, retrieve, delete a response, and list its input items.

Routes are thin: they hand the request to the app's :class:`~gateway.responses.service.Responses`
(``app.state.responses``) and answer 503 while the engine is not ready (create only; stored
responses are served from the start). A response another key made is 404, as if it did not
exist. ``include`` is read as the SDK sends it (``include[]=...``) or plainly (``include=...``).
The app factory attaches the API key check. This module knows no protocol details beyond which
model answers which route.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from gateway.api.auth import principal_of
from gateway.api.vector_store_routes import vector_stores
from gateway.errors import invalid
from gateway.responses.objects import ItemList, Response, ResponseDeleted
from gateway.responses.protocol import ResponseCreate
from gateway.responses.service import Responses, not_found, shown

router = APIRouter(tags=["Responses"])


def responses(request: Request) -> Responses:
    return request.app.state.responses


def included(request: Request) -> list[str]:
    return request.query_params.getlist("include") + request.query_params.getlist("include[]")


@router.post("/responses", response_model=Response)
async def create_response(body: ResponseCreate, request: Request):
    """A model response to text or items, whole or as server-sent events (``stream: true``); stored unless
    ``store`` is false."""
    completions, _ = request.app.state.gateway.ready()
    return await responses(request).create(body, request, completions, vector_stores(request))


@router.get("/responses/{response_id}")
async def get_response(response_id: str, request: Request, stream: bool = False) -> Response:
    """A stored response (``include=file_search_call.results`` adds the search results)."""
    if stream:
        raise invalid("stream", "lorag makes no background responses, so there is no stream to resume")
    return shown(responses(request).stored(response_id, principal_of(request)).response, included(request))


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> ResponseDeleted:
    if not responses(request).store.delete(response_id, principal_of(request)):
        raise not_found(response_id)
    return ResponseDeleted(id=response_id)


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    request: Request,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
) -> ItemList:
    """The input items of a stored response, newest first unless ``order=asc``; ``after``: the last id of the
    page before."""
    page = responses(request).store.input_items(response_id, principal_of(request), after, limit, order == "desc")
    if page is None:
        raise not_found(response_id)
    return page
