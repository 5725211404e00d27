"""Routes of the retrieval API: knowledge bases, documents, search (lorag's own) and ``/v1/embeddings``.

Knowledge-base objects follow OpenAI's conventions: an ``object`` field naming the type, lists
as ``{"object": "list", "data": [...]}``, deletions answered ``{"id", "object", "deleted":
true}``. Reads need an API key when keys are configured; writes (create, change, upload, delete)
need an admin key when admin keys are configured. Routes are thin: the work is in
:class:`gateway.knowledge.Knowledge`. This module knows nothing about engines or chat.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Generic, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from pydantic import BaseModel, Field, field_validator

from gateway import auth
from gateway.errors import invalid, model_not_found
from gateway.knowledge import DEFAULT_TOP_K, Filters, Knowledge, Retrieval, Upload, too_large
from rag.database import DocumentRecord
from rag.embedder import DEFAULT_EMBEDDER
from rag.retriever import Hit, Mode
from rag.store import Manifest

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request
EMBEDDER_ALIASES = {"all-MiniLM-L6-v2": DEFAULT_EMBEDDER}


class KnowledgeBaseCreate(BaseModel):
    """POST /v1/knowledge_bases."""

    name: str = Field(description="1-64 of a-z, 0-9, '-' and '_'; the part after '@' in a model name.")
    embedder: str | None = Field(None, description="sentence-transformers id or path; default: the server's.")
    chunk_tokens: int | None = Field(None, ge=8, description="Most embedder tokens per chunk; default: its input size.")
    chunk_overlap: int | None = Field(None, ge=0, description="Tokens shared by consecutive chunks; default: 1/8.")


class KnowledgeBaseUpdate(BaseModel):
    """PATCH /v1/knowledge_bases/{kb}: another embedder or chunking; every document is cut again and re-embedded."""

    embedder: str | None = Field(None, description="sentence-transformers id or path; default: the current one.")
    chunk_tokens: int | None = Field(
        None, ge=8, description="Most embedder tokens per chunk; default: the current size, at most the new input size."
    )
    chunk_overlap: int | None = Field(None, ge=0, description="Default: 1/8 of a new chunk_tokens, else scaled.")


class KnowledgeBaseObject(BaseModel):
    id: str
    object: Literal["knowledge_base"] = "knowledge_base"
    name: str
    embedder: str
    dimension: int
    chunking: dict[str, int]
    created: int
    documents: int
    chunks: int


class DocumentObject(BaseModel):
    id: str
    object: Literal["knowledge_base.document"] = "knowledge_base.document"
    filename: str
    bytes: int
    sha256: str
    created: int
    chunks: int
    metadata: dict[str, Any]


class SearchRequest(BaseModel):
    """POST /v1/knowledge_bases/{kb}/search."""

    query: str = Field(min_length=1)
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=100)
    mode: Mode = "hybrid"
    min_score: float | None = None
    filters: Filters = Field(
        default_factory=dict, description="filename, document_id or a metadata key -> a value or a list of values."
    )


class SearchHit(BaseModel):
    object: Literal["knowledge_base.search_result"] = "knowledge_base.search_result"
    chunk_id: int
    document_id: str
    filename: str
    text: str
    score: float
    page: int | None
    section: str | None
    start: int
    end: int
    metadata: dict[str, Any]


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True] = True


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings, as OpenAI defines it (text input only)."""

    input: str | list[str]
    model: str
    dimensions: int | None = Field(None, description="Must be the model's own dimension if given.")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"give 1 to {MAX_EMBEDDING_INPUTS} strings")
        if any(not text.strip() for text in texts):
            raise ValueError("strings must not be empty")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


T = TypeVar("T")


class ListOf(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]


def knowledge(request: Request) -> Knowledge:
    return request.app.state.gateway.knowledge


Service = Annotated[Knowledge, Depends(knowledge)]
reads = APIRouter(tags=["knowledge bases"])
writes = APIRouter(tags=["knowledge bases"], dependencies=[Depends(auth.admin)])
embeddings = APIRouter(tags=["OpenAI"])


@writes.post("/knowledge_bases", status_code=201)
async def create_knowledge_base(body: KnowledgeBaseCreate, service: Service) -> KnowledgeBaseObject:
    """Create an empty knowledge base; chat with it as ``model="<base-or-adapter>@<name>"``."""
    kb = await service.create(body.name, body.embedder, body.chunk_tokens, body.chunk_overlap)
    return kb_object(kb.manifest, service)


@reads.get("/knowledge_bases")
async def list_knowledge_bases(service: Service) -> ListOf[KnowledgeBaseObject]:
    return ListOf[KnowledgeBaseObject](data=[kb_object(manifest, service) for manifest in service.manifests()])


@reads.get("/knowledge_bases/{kb}")
async def get_knowledge_base(kb: str, service: Service) -> KnowledgeBaseObject:
    opened = await service.get(kb)
    return kb_object(opened.manifest, service)


@writes.patch("/knowledge_bases/{kb}")
async def update_knowledge_base(kb: str, body: KnowledgeBaseUpdate, service: Service) -> KnowledgeBaseObject:
    """Change the embedder or chunking: documents are cut again from their text and every chunk re-embedded."""
    updated = await service.update(kb, body.embedder, body.chunk_tokens, body.chunk_overlap)
    return kb_object(updated.manifest, service)


@writes.delete("/knowledge_bases/{kb}")
async def delete_knowledge_base(kb: str, service: Service) -> Deleted:
    """Delete the knowledge base with every document, chunk and index."""
    await service.delete(kb)
    return Deleted(id=kb, object="knowledge_base.deleted")


@writes.post("/knowledge_bases/{kb}/documents", status_code=201)
async def upload_documents(
    kb: str,
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
async def list_documents(kb: str, service: Service) -> ListOf[DocumentObject]:
    return ListOf[DocumentObject](data=[document_object(record) for record in await service.documents(kb)])


@writes.delete("/knowledge_bases/{kb}/documents/{document_id}")
async def delete_document(kb: str, document_id: str, service: Service) -> Deleted:
    """Delete the document and all its chunks from the knowledge base and both indexes."""
    await service.delete_document(kb, document_id)
    return Deleted(id=document_id, object="knowledge_base.document.deleted")


@reads.post("/knowledge_bases/{kb}/search")
async def search(kb: str, body: SearchRequest, service: Service) -> ListOf[SearchHit]:
    """The chunks a RAG chat with the same options would put into the prompt, best first."""
    retrieval = Retrieval(kb, body.top_k, body.mode, body.min_score, body.filters)
    hits = await service.search(retrieval, body.query)
    return ListOf[SearchHit](data=[search_hit(hit) for hit in hits])


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


def search_hit(hit: Hit) -> SearchHit:
    return SearchHit(
        chunk_id=hit.chunk_id, document_id=hit.document_id, filename=hit.filename, text=hit.text,
        score=hit.score, page=hit.page, section=hit.section, start=hit.start, end=hit.end, metadata=hit.metadata,
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
