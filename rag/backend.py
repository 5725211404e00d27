"""What both knowledge-base backends share: the interface, knowledge-base names, and embedders built once.

Two backends keep knowledge bases: the folder (`rag.store`: SQLite, FAISS and BM25 files, one
writer process) and Milvus (`rag.milvus_store`: every gateway with the same URI shares them).
Both implement :class:`KnowledgeBaseLike` and :class:`KnowledgeBasesLike`, so the retriever
(`rag.retriever`), the gateway and the CLI hold either without knowing which. This module
knows nothing about how either stores anything.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from rag.attachments import Attachment, Batch
from rag.embedder import Embedder
from rag.errors import EmbedderUnavailable, InvalidName

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def validate_name(name: str) -> str:
    """Return `name` if it is 1-64 of lowercase letters, digits, '-' and '_'; else raise InvalidName."""
    if not NAME.fullmatch(name):
        raise InvalidName(f"invalid knowledge base name {name!r}: use 1-64 of a-z, 0-9, '-' and '_'")
    return name


class Embedders:
    """Embedders by id, each built once by `factory`; EmbedderUnavailable for one that cannot be built."""

    def __init__(self, factory: Callable[[str], Embedder]):
        self._factory = factory
        self._built: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def __call__(self, embedder_id: str) -> Embedder:
        with self._lock:
            if embedder_id not in self._built:
                try:
                    self._built[embedder_id] = self._factory(embedder_id)
                except (OSError, ImportError, ValueError) as e:
                    raise EmbedderUnavailable(f"cannot load embedder '{embedder_id}': {e}") from e
            return self._built[embedder_id]


class KnowledgeBaseLike(Protocol):
    """One knowledge base: `manifest` (rag.folder.Manifest), `embedder`, and `database` (the document and
    chunk reads and metadata writes of `rag.database.ChunkDatabase`)."""

    manifest: Any
    embedder: Embedder
    database: Any

    def add_documents(self, documents: Sequence[Any], *, progress: bool = False, chunking: Any = None) -> list: ...
    def delete_document(self, document_id: str) -> None: ...
    def set_embedder(self, embedder: Embedder, *, chunking: Any = None, progress: bool = False) -> None: ...
    def set_extra(self, changes: Mapping[str, Any]) -> Any: ...
    def rankings(self, query: str, modes: Sequence[str], depth: int, filters: Any = None) -> dict[str, list]: ...
    def chunks(self, ids: Sequence[int]) -> dict[int, Any]: ...


class AttachmentsLike(Protocol):
    """The files attached to one knowledge base as a vector store: `rag.attachments` (the folder's SQLite) or
    `rag.milvus_attachments`, with the same statuses and rules."""

    def put(self, attachment: Attachment) -> Attachment: ...
    def get(self, attachment_id: str) -> Attachment | None: ...
    def all(self, status: str | None = None, batch: str | None = None) -> list[Attachment]: ...
    def abandoned(self) -> list[Attachment]: ...
    def finish(self, attachment_id: str, status: Any, usage_bytes: int = 0, error: Any = None) -> bool: ...
    def set_attributes(self, attachment_id: str, attributes: dict[str, Any]) -> Attachment | None: ...
    def delete(self, attachment_id: str) -> bool: ...
    def add_batch(self, batch_id: str, created: int | None = None) -> Batch: ...
    def batch(self, batch_id: str) -> Batch | None: ...
    def cancel_batch(self, batch_id: str) -> None: ...
    def document_bytes(self) -> int: ...


class KnowledgeBasesLike(Protocol):
    """The knowledge bases of one backend, by name."""

    default_embedder: str

    def embedder(self, embedder_id: str) -> Embedder: ...
    def create(self, name: str, *, embedder: str | None = None, chunking: Any = None, **kwargs: Any) -> Any: ...
    def get(self, name: str) -> KnowledgeBaseLike: ...
    def set_embedder(self, name: str, embedder: str | None = None, **kwargs: Any) -> KnowledgeBaseLike: ...
    def manifest(self, name: str) -> Any: ...
    def counts(self, name: str) -> tuple[int, int]: ...
    def attachments(self, name: str) -> AttachmentsLike: ...
    def list(self) -> list[Any]: ...
    def delete(self, name: str) -> None: ...
