"""Which knowledge-base backend the settings choose: the folder LORAG_KB_DIR, or Milvus at LORAG_MILVUS_URI.

The folder (``rag.store``) is the default: one gateway per folder. With ``LORAG_MILVUS_URI`` every
knowledge base lives in Milvus (``rag.milvus_bases``), shared by every gateway with the same URI,
token and database; the gateway's owner name, which lets it clear its own dead uploads when it
restarts, is its host name and the absolute LORAG_KB_DIR (unused otherwise). pymilvus is imported
only when Milvus is chosen. This module knows nothing about routes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from gateway.settings import Settings
from rag.backend import KnowledgeBasesLike
from rag.embedder import Embedder, load_embedder
from rag.store import KnowledgeBases


def open_bases(settings: Settings, embedder_factory: Callable[[str], Embedder] = load_embedder) -> KnowledgeBasesLike:
    """The knowledge bases the settings name: Milvus if LORAG_MILVUS_URI is set, else the folder."""
    return open_backend(settings, "milvus" if settings.milvus_uri else "folder", embedder_factory)


def open_backend(
    settings: Settings, kind: str, embedder_factory: Callable[[str], Embedder] = load_embedder
) -> KnowledgeBasesLike:
    """The knowledge bases of one backend, "folder" (LORAG_KB_DIR) or "milvus" (LORAG_MILVUS_URI, which must be
    set: ValueError otherwise)."""
    if kind == "folder":
        return KnowledgeBases(settings.kb_dir, default_embedder=settings.embedder, embedder_factory=embedder_factory)
    if not settings.milvus_uri:
        raise ValueError("set LORAG_MILVUS_URI (e.g. http://127.0.0.1:19530) to reach Milvus")
    from rag.milvus_bases import MilvusKnowledgeBases

    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusKnowledgeBases(
        settings.milvus_uri, token=token, db_name=settings.milvus_db, owner=owner(settings),
        embedder_factory=embedder_factory, default_embedder=settings.embedder,
    )  # fmt: skip


def owner(settings: Settings) -> str:
    """This gateway's name in Milvus's document rows: the same after a restart, another for another gateway."""
    return f"{socket.gethostname()}:{settings.kb_dir.resolve()}"
