"""OpenAI's vector-store wire models, as lorag takes and sends them; fields in the reference's order.

Requests: :class:`StoreCreate`, :class:`StoreUpdate`, :class:`FileCreate`, :class:`FileUpdate`,
:class:`BatchCreate`, :class:`SearchRequest`. Responses: :class:`VectorStore`,
:class:`VectorStoreFile`, :class:`FileBatch`, search results and content pages, the cursor
:class:`Page`. Attributes and metadata are checked as OpenAI checks them (16 pairs, keys of 64
characters, strings of 512), and attribute keys as filter keys (``rag.query``), so that every
attribute stored can be filtered on. ``filters`` are checked by ``rag.query`` before any work.
Imports no index. This module knows nothing about storage or routes.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, Field, model_validator

from gateway.knowledge.retrieval import Filters
from gateway.metadata import MAX_KEY, MAX_PAIRS, MAX_VALUE, Metadata
from rag.attachments import Status
from rag.query import MAX_TOP_K, METADATA_KEY

T = TypeVar("T")
FILE_ID_KEY = "file_id"
"""The metadata key under which a document attached from ``/v1/files`` keeps its file id."""
FileId = Annotated[str, Field(min_length=1, max_length=256)]


def _attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(value) > MAX_PAIRS:
        raise ValueError(f"at most {MAX_PAIRS} attributes")
    for key, item in (value or {}).items():
        if len(key) > MAX_KEY or not METADATA_KEY.fullmatch(key):
            raise ValueError(f"attribute key {key[:MAX_KEY]!r}: 1-{MAX_KEY} of letters, digits, '_', '.' and '-'")
        if key == FILE_ID_KEY:
            raise ValueError(f"attribute key {FILE_ID_KEY!r} is reserved: it holds the file's id")
        if isinstance(item, str) and len(item) > MAX_VALUE:
            raise ValueError(f"attribute {key!r}: strings are at most {MAX_VALUE} characters")
    return value


Attributes = Annotated[
    dict[str, Annotated[str, Field(strict=True)] | Annotated[float, Field(allow_inf_nan=False)] | bool] | None,
    AfterValidator(_attributes),
]


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class StaticChunking(BaseModel):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)


class ChunkingStrategy(BaseModel):
    """``auto``: the knowledge base's chunking; ``static``: these sizes, cut to what the embedder reads."""

    type: Literal["auto", "static"]
    static: StaticChunking | None = None

    @model_validator(mode="after")
    def _static(self) -> ChunkingStrategy:
        if self.type == "static" and self.static is None:
            raise ValueError("a static chunking_strategy needs 'static'")
        if self.static and self.static.chunk_overlap_tokens * 2 > self.static.max_chunk_size_tokens:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class StoreCreate(BaseModel):
    """POST /v1/vector_stores."""

    file_ids: list[FileId] = Field(default_factory=list, max_length=500)
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class StoreUpdate(BaseModel):
    """POST /v1/vector_stores/{id}: a field left out is kept; ``expires_after: null`` removes the expiry."""

    name: str | None = Field(None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class FileCounts(BaseModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(BaseModel):
    id: str = Field(description="The knowledge base's name: chat with it as model '<model>@<id>'.")
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class FileCreate(BaseModel):
    """POST /v1/vector_stores/{id}/files."""

    file_id: FileId
    attributes: Attributes = None
    chunking_strategy: ChunkingStrategy | None = None


class FileUpdate(BaseModel):
    attributes: Attributes


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFile(BaseModel):
    id: str = Field(description="The id of the file in /v1/files.")
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: Status
    last_error: LastError | None = None
    chunking_strategy: dict[str, Any] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class BatchFile(BaseModel):
    file_id: FileId
    attributes: Attributes = None
    chunking_strategy: ChunkingStrategy | None = None


class BatchCreate(BaseModel):
    """POST /v1/vector_stores/{id}/file_batches: ``file_ids`` (with shared settings) or ``files``, not both."""

    file_ids: list[FileId] | None = Field(None, max_length=2000)
    files: list[BatchFile] | None = Field(None, max_length=2000)
    attributes: Attributes = None
    chunking_strategy: ChunkingStrategy | None = None

    @model_validator(mode="after")
    def _one_list(self) -> BatchCreate:
        if (self.file_ids is None) == (self.files is None) or not (self.file_ids or self.files):
            raise ValueError("give a non-empty 'file_ids' or 'files', not both")
        return self

    def items(self) -> list[BatchFile]:
        if self.files is not None:
            return self.files
        return [BatchFile(file_id=i, attributes=self.attributes, chunking_strategy=self.chunking_strategy)
                for i in self.file_ids or []]  # fmt: skip


class FileBatch(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class HybridSearch(BaseModel):
    """Extension-compatible: the weights of the dense and BM25 rankings in the fusion."""

    embedding_weight: float = Field(1.0, ge=0, le=100)
    text_weight: float = Field(1.0, ge=0, le=100)


class RankingOptions(BaseModel):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(0.0, ge=0, le=1)
    hybrid_search: HybridSearch | None = None


class SearchRequest(BaseModel):
    """POST /v1/vector_stores/{id}/search."""

    query: str | Annotated[list[str], Field(min_length=1, max_length=16)]
    filters: Filters | None = None
    max_num_results: int = Field(10, ge=1, le=MAX_TOP_K)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False

    def queries(self) -> list[str]:
        texts = [self.query] if isinstance(self.query, str) else self.query
        return [text for text in texts if text.strip()]


class Content(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any]
    content: list[Content]


class SearchPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


class ContentPage(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[Content]
    has_more: bool = False
    next_page: str | None = None


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True] = True


class Page(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
