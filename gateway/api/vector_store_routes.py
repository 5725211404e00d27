"""Routes of OpenAI's vector-store API: ``/v1/vector_stores``, its files, file batches and search.

Every route needs a key as every ``/v1`` route does; any key may create a store, and becomes its
owner. Reads (retrieve, list, files, content, search) need the caller to see the store
(:func:`gateway.knowledge.vector_stores.may_see`: its owner and admins, or per the key's
knowledge-base scopes for a store without an owner); writes to a store without an owner (a
knowledge base made through ``/v1/knowledge_bases``) need an admin key, as its own writes do. A
store the caller may not see is a 404 like an unknown one. While a file is in progress its
retrieve answers ``openai-poll-after-ms`` so the SDK's ``*_and_poll`` helpers poll briskly.
Routes are thin: the work is in :class:`gateway.knowledge.vector_stores.VectorStores`, which is
built on first use over the app's knowledge bases and ``/v1/files``. This module knows nothing
about indexes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from gateway.api import auth
from gateway.api.auth import principal_of
from gateway.errors import LoragError
from gateway.knowledge.vector_store_protocol import (
    BatchCreate,
    ContentPage,
    Deleted,
    FileBatch,
    FileCreate,
    FileUpdate,
    Page,
    SearchPage,
    SearchRequest,
    StoreCreate,
    StoreUpdate,
    VectorStore,
    VectorStoreFile,
)
from gateway.knowledge.vector_stores import VectorStores, fields, page
from rag.store import Manifest

POLL_AFTER_MS = "100"
router = APIRouter(tags=["vector stores"])


def vector_stores(request: Request) -> VectorStores:
    """The app's vector stores, built on first use."""
    state = request.app.state
    if getattr(state, "vector_stores", None) is None:
        files = state.gateway.fine_tuning

        def source(file_id: str) -> tuple[str, Path]:
            try:
                file, path = files.file(file_id)
            except LoragError as e:
                raise LoragError(404, e.message, param="file_id", code="file_not_found") from None
            return file.filename, path

        state.vector_stores = VectorStores(state.gateway.knowledge, source)
    return state.vector_stores


Service = Annotated[VectorStores, Depends(vector_stores)]
After = Annotated[str | None, Query(description="The last id of the previous page.")]
Before = Annotated[str | None, Query(description="The first id of the next page.")]
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]
StatusFilter = Literal["in_progress", "completed", "failed", "cancelled"] | None


def own_files(request: Request, file_ids: list[str]) -> None:
    """404 ``file_not_found`` for a file another key uploaded (admins may attach any): a store's files can be read
    back through it, so a key attaches only its own."""
    principal, files = principal_of(request), request.app.state.gateway.fine_tuning
    for file_id in file_ids:
        if not principal.admin and files.store.owner(file_id) != principal.name:
            raise LoragError(404, f"No such File object: {file_id}", param="file_id", code="file_not_found")


def writable(
    store_id: str, service: VectorStores, request: Request, credentials: auth.Credentials, expired: bool = False
) -> Manifest:
    """The store, if the caller may write it (and, unless ``expired``, it has not expired); 404 if it may not see it."""
    principal = principal_of(request)
    manifest = service.manifest(store_id, principal) if expired else service.usable(store_id, principal)
    if fields(manifest).get("owner") is None:  # a knowledge base made through /v1/knowledge_bases
        request.app.state.keys.check_admin(principal, credentials)
    return manifest


@router.post("/vector_stores")
async def create_vector_store(body: StoreCreate, service: Service, request: Request) -> VectorStore:
    """A new knowledge base ``vs_<hex>``, owned by the calling key; chat with it as ``<model>@<id>``."""
    own_files(request, body.file_ids)
    return await service.create(body, principal_of(request))


@router.get("/vector_stores")
async def list_vector_stores(
    service: Service, request: Request, after: After = None, before: Before = None, limit: Limit = 20,
    order: Order = "desc",
) -> Page[VectorStore]:  # fmt: skip
    """Every store and knowledge base the key may see, by creation time."""
    return await service.list(principal_of(request), after, before, limit, order)


@router.get("/vector_stores/{vector_store_id}")
async def retrieve_vector_store(vector_store_id: str, service: Service, request: Request) -> VectorStore:
    return await service.retrieve(vector_store_id, principal_of(request))


@router.post("/vector_stores/{vector_store_id}")
async def modify_vector_store(
    vector_store_id: str, body: StoreUpdate, service: Service, request: Request, credentials: auth.Credentials
) -> VectorStore:
    writable(vector_store_id, service, request, credentials)
    return await service.update(vector_store_id, body, principal_of(request))


@router.delete("/vector_stores/{vector_store_id}")
async def delete_vector_store(
    vector_store_id: str, service: Service, request: Request, credentials: auth.Credentials
) -> Deleted:
    """Delete the store's knowledge base with every document, chunk and index (the /v1/files files stay)."""
    writable(vector_store_id, service, request, credentials, expired=True)
    return await service.delete(vector_store_id, principal_of(request))


@router.post("/vector_stores/{vector_store_id}/files")
async def create_vector_store_file(
    vector_store_id: str, body: FileCreate, service: Service, request: Request, credentials: auth.Credentials
) -> VectorStoreFile:
    """Attach an uploaded file: it is ``in_progress`` until indexed, then ``completed`` or ``failed``."""
    writable(vector_store_id, service, request, credentials)
    own_files(request, [body.file_id])
    [attached] = await service.files.attach(vector_store_id, [(body.file_id, body.attributes, body.chunking_strategy)])
    return service.files.object(vector_store_id, attached)


@router.get("/vector_stores/{vector_store_id}/files")
async def list_vector_store_files(
    vector_store_id: str, service: Service, request: Request, after: After = None, before: Before = None,
    limit: Limit = 20, order: Order = "desc", filter: StatusFilter = None,
) -> Page[VectorStoreFile]:  # fmt: skip
    service.manifest(vector_store_id, principal_of(request))
    files = service.files.all(vector_store_id, filter)
    return page(files, lambda file: file.id, after, before, limit, order)


@router.get("/vector_stores/{vector_store_id}/files/{file_id}")
async def retrieve_vector_store_file(
    vector_store_id: str, file_id: str, service: Service, request: Request, response: Response
) -> VectorStoreFile:
    service.manifest(vector_store_id, principal_of(request))
    service.files.recover(vector_store_id)
    found = service.files.object(vector_store_id, service.files.get(vector_store_id, file_id))
    if found.status == "in_progress":
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return found


@router.post("/vector_stores/{vector_store_id}/files/{file_id}")
async def update_vector_store_file(
    vector_store_id: str, file_id: str, body: FileUpdate, service: Service, request: Request,
    credentials: auth.Credentials,
) -> VectorStoreFile:  # fmt: skip
    """New attributes: at once in the metadata of the file's documents, which filters see."""
    writable(vector_store_id, service, request, credentials)
    return await service.files.update(vector_store_id, file_id, body.attributes)


@router.delete("/vector_stores/{vector_store_id}/files/{file_id}")
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, service: Service, request: Request, credentials: auth.Credentials
) -> Deleted:
    """Remove the file's documents from the index (it is no longer retrieved); the /v1/files file stays."""
    writable(vector_store_id, service, request, credentials)
    return await service.files.delete(vector_store_id, file_id)


@router.get("/vector_stores/{vector_store_id}/files/{file_id}/content")
async def vector_store_file_content(
    vector_store_id: str, file_id: str, service: Service, request: Request
) -> ContentPage:
    """The file's text as the knowledge base parsed it."""
    service.manifest(vector_store_id, principal_of(request))
    return await service.files.content(vector_store_id, file_id)


@router.post("/vector_stores/{vector_store_id}/file_batches")
async def create_file_batch(
    vector_store_id: str, body: BatchCreate, service: Service, request: Request, credentials: auth.Credentials
) -> FileBatch:
    writable(vector_store_id, service, request, credentials)
    own_files(request, [item.file_id for item in body.items()])
    return await service.files.create_batch(vector_store_id, body)


@router.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}")
async def retrieve_file_batch(
    vector_store_id: str, batch_id: str, service: Service, request: Request, response: Response
) -> FileBatch:
    service.manifest(vector_store_id, principal_of(request))
    found = service.files.batch(vector_store_id, batch_id)
    if found.file_counts.in_progress:
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return found


@router.post("/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(
    vector_store_id: str, batch_id: str, service: Service, request: Request, credentials: auth.Credentials
) -> FileBatch:
    writable(vector_store_id, service, request, credentials)
    return await service.files.cancel_batch(vector_store_id, batch_id)


@router.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    vector_store_id: str, batch_id: str, service: Service, request: Request, after: After = None,
    before: Before = None, limit: Limit = 20, order: Order = "desc", filter: StatusFilter = None,
) -> Page[VectorStoreFile]:  # fmt: skip
    service.manifest(vector_store_id, principal_of(request))
    service.files.batch(vector_store_id, batch_id)
    files = service.files.all(vector_store_id, filter, batch_id)
    return page(files, lambda file: file.id, after, before, limit, order)


@router.post("/vector_stores/{vector_store_id}/search")
async def search_vector_store(
    vector_store_id: str, body: SearchRequest, service: Service, request: Request
) -> SearchPage:
    """The chunks best matching the query, with OpenAI's ``filters`` on the files' attributes."""
    service.usable(vector_store_id, principal_of(request))
    return await service.search(vector_store_id, body)
