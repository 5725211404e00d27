"""The wire models of the retrieval API: knowledge bases, documents, search hits, citations, embeddings.

Knowledge-base objects follow OpenAI's conventions: an ``object`` field naming the type, lists
as ``{"object": "list", "data": [...]}``, deletions answered ``{"id", "object", "deleted":
true}``. A retrieved chunk's fields are declared once (:class:`RetrievedChunk`) and read from
``rag``'s dataclasses (``from_attributes``); the retrieval options are the annotated types of
:mod:`gateway.knowledge.retrieval`, with one limit each. Imports no index (FAISS, BM25). This
module knows nothing about routes or engines.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.knowledge.retrieval import RetrievalFields
from rag.embedder import DEFAULT_EMBEDDER

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


class RetrievedChunk(BaseModel):
    """The fields of a retrieved chunk that every wire model showing one carries, read from rag's ``Hit``."""

    model_config = ConfigDict(from_attributes=True)

    chunk_id: int
    document_id: str
    filename: str
    score: float
    page: int | None
    section: str | None
    start: int  # character offsets of the chunk in the document's text
    end: int


class SearchRequest(RetrievalFields):
    """POST /v1/knowledge_bases/{kb}/search: the options of a RAG chat, and the query."""

    query: str = Field(min_length=1)


class SearchHit(RetrievedChunk):
    object: Literal["knowledge_base.search_result"] = "knowledge_base.search_result"
    text: str
    metadata: dict[str, Any]


class Citation(RetrievedChunk):
    """Extension of chat responses: source ``[index]`` of a retrieval-augmented prompt."""

    index: int
    snippet: str


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
