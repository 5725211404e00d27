"""Routes of the retrieval API: knowledge bases, documents, search (lorag's own) and ``/v1/embeddings``.

The request and response models are in :mod:`gateway.api.knowledge_protocol`. Reads need an API
key when keys are configured; writes (create, change, upload, delete) need an admin key when
admin keys are configured. Routes are thin: the work is in
:class:`gateway.knowledge.service.Knowledge`. This module knows nothing about engines or chat.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Form, Request, UploadFile

from gateway.api import auth
from gateway.api.auth import principal_of
from gateway.api.knowledge_protocol import (
    EMBEDDER_ALIASES,
    Deleted,
    DocumentObject,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    KnowledgeBaseCreate,
    KnowledgeBaseObject,
    KnowledgeBaseUpdate,
    ListOf,
    SearchHit,
    SearchRequest,
)
from gateway.errors import LoragError, invalid, model_not_found, too_large
from gateway.knowledge.retrieval import Retrieval
from gateway.knowledge.service import Knowledge, Upload
from gateway.knowledge.vector_stores import may_see, may_use
from rag.database import DocumentRecord
from rag.errors import KnowledgeBaseNotFound
from rag.store import Manifest


def knowledge(request: Request) -> Knowledge:
    return request.app.state.gateway.knowledge


def scoped(kb: str, request: Request) -> str:
    """The knowledge base of the path, if the caller's key may use it (its scopes; a vector store's owner, see
    :func:`~gateway.knowledge.vector_stores.may_see`); as if it did not exist otherwise."""
    if not may_use(knowledge(request), kb, principal_of(request)):
        raise KnowledgeBaseNotFound(kb)
    return kb


Service = Annotated[Knowledge, Depends(knowledge)]
Kb = Annotated[str, Depends(scoped)]
reads = APIRouter(tags=["knowledge bases"])
writes = APIRouter(tags=["knowledge bases"], dependencies=[Depends(auth.admin)])
embeddings = APIRouter(tags=["OpenAI"])


@writes.post("/knowledge_bases", status_code=201)
async def create_knowledge_base(body: KnowledgeBaseCreate, service: Service, request: Request) -> KnowledgeBaseObject:
    """Create an empty knowledge base; chat with it as ``model="<base-or-adapter>@<name>"``."""
    if not principal_of(request).may_use_kb(body.name):
        raise LoragError(403, f"this API key may not use a knowledge base named '{body.name}'", param="name",
                         type="permission_error", code="insufficient_permissions")  # fmt: skip
    kb = await service.create(body.name, body.embedder, body.chunk_tokens, body.chunk_overlap)
    return kb_object(kb.manifest, service)


@reads.get("/knowledge_bases")
async def list_knowledge_bases(service: Service, request: Request) -> ListOf[KnowledgeBaseObject]:
    principal = principal_of(request)
    manifests = [manifest for manifest in service.manifests() if may_see(principal, manifest)]
    return ListOf[KnowledgeBaseObject](data=[kb_object(manifest, service) for manifest in manifests])


@reads.get("/knowledge_bases/{kb}")
async def get_knowledge_base(kb: Kb, service: Service) -> KnowledgeBaseObject:
    opened = await service.get(kb)
    return kb_object(opened.manifest, service)


@writes.patch("/knowledge_bases/{kb}")
async def update_knowledge_base(kb: Kb, body: KnowledgeBaseUpdate, service: Service) -> KnowledgeBaseObject:
    """Change the embedder or chunking: documents are cut again from their text and every chunk re-embedded."""
    updated = await service.update(kb, body.embedder, body.chunk_tokens, body.chunk_overlap)
    return kb_object(updated.manifest, service)


@writes.delete("/knowledge_bases/{kb}")
async def delete_knowledge_base(kb: Kb, service: Service) -> Deleted:
    """Delete the knowledge base with every document, chunk and index."""
    await service.delete(kb)
    return Deleted(id=kb, object="knowledge_base.deleted")


@writes.post("/knowledge_bases/{kb}/documents", status_code=201)
async def upload_documents(
    kb: Kb,
    service: Service,
    files: Annotated[list[UploadFile], Form(description="One or more files (repeat the field).")],
    metadata: Annotated[str | None, Form(description="A JSON object stored with every document.")] = None,
) -> ListOf[DocumentObject]:
    """Add .txt .md .html .pdf .docx .json .jsonl files; an unchanged document is not added twice."""
    extra = _metadata(metadata)
    uploads = []
    for file in files:
        data = await file.read(service.max_upload_bytes + 1)
        if len(data) > service.max_upload_bytes:
            raise too_large(file.filename or "upload", service.max_upload_bytes)
        uploads.append(Upload(file.filename or "", data))
    records = await service.add(kb, uploads, extra)
    return ListOf[DocumentObject](data=[document_object(record) for record in records])


@reads.get("/knowledge_bases/{kb}/documents")
async def list_documents(kb: Kb, service: Service) -> ListOf[DocumentObject]:
    return ListOf[DocumentObject](data=[document_object(record) for record in await service.documents(kb)])


@writes.delete("/knowledge_bases/{kb}/documents/{document_id}")
async def delete_document(kb: Kb, document_id: str, service: Service) -> Deleted:
    """Delete the document and all its chunks from the knowledge base and both indexes."""
    await service.delete_document(kb, document_id)
    return Deleted(id=document_id, object="knowledge_base.document.deleted")


@reads.post("/knowledge_bases/{kb}/search")
async def search(kb: Kb, body: SearchRequest, service: Service) -> ListOf[SearchHit]:
    """The chunks a RAG chat with the same options would put into the prompt, best first."""
    retrieval = Retrieval(kb=kb, **body.model_dump(exclude={"query"}))
    hits = await service.search(retrieval, body.query)
    return ListOf[SearchHit](data=[SearchHit.model_validate(hit) for hit in hits])


@embeddings.post("/embeddings")
async def create_embeddings(body: EmbeddingRequest, service: Service) -> EmbeddingList:
    """Embed text with the server's default embedder or any knowledge base's embedder."""
    model = EMBEDDER_ALIASES.get(body.model, body.model)
    served = {service.bases.default_embedder} | {manifest.embedder for manifest in service.manifests()}
    if model not in served:
        raise model_not_found(
            f"The embedding model '{body.model}' is not served; use one of {', '.join(sorted(served))}"
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors, tokens = await service.embed(model, texts)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise invalid("dimensions", f"'{body.model}' makes {vectors.shape[1]}-dimensional embeddings only")
    data = [Embedding(embedding=_encode(v, body.encoding_format), index=i) for i, v in enumerate(vectors)]
    return EmbeddingList(data=data, model=body.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))


def kb_object(manifest: Manifest, service: Knowledge) -> KnowledgeBaseObject:
    documents, chunks = service.counts(manifest.name)
    return KnowledgeBaseObject(
        id=manifest.name, name=manifest.name, embedder=manifest.embedder, dimension=manifest.dimension,
        chunking={"chunk_tokens": manifest.chunking.chunk_size, "chunk_overlap": manifest.chunking.chunk_overlap},
        created=manifest.created, documents=documents, chunks=chunks,
    )  # fmt: skip


def document_object(record: DocumentRecord) -> DocumentObject:
    return DocumentObject(
        id=record.id, filename=record.filename, bytes=record.size, sha256=record.sha256,
        created=record.created, chunks=record.chunk_count, metadata=record.metadata,
    )  # fmt: skip


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise invalid("metadata", 'metadata must be a JSON object, e.g. {"source": "handbook"}')
    return value


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # little-endian float32, as OpenAI's SDK decodes it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.tolist()
