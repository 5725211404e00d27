"""The errors the ``rag`` package raises, one class per thing a caller can get wrong.

Each is a ``ValueError``, ``LookupError`` or (for a knowledge base another process writes)
``RuntimeError`` as well, so plain Python callers can catch them broadly, while the gateway maps
each class to an HTTP status and the request field at fault in one table. Messages are one line
and name what was asked for. This module knows nothing about HTTP.
"""

from __future__ import annotations


class RagError(Exception):
    """Anything rag refuses; the subclasses say what."""


class NotFound(RagError, LookupError):
    """No such knowledge base or document."""


class KnowledgeBaseNotFound(NotFound):
    def __init__(self, name: str):
        super().__init__(f"no knowledge base named '{name}'")
        self.name = name


class DocumentNotFound(NotFound):
    def __init__(self, document_id: str, kb: str | None = None):
        super().__init__(
            f"knowledge base '{kb}' has no document '{document_id}'" if kb else f"no document '{document_id}'"
        )
        self.document_id, self.kb = document_id, kb


class KnowledgeBaseLocked(RagError, RuntimeError):
    """Another process holds the knowledge base open for writing (``rag.writer_lock``)."""

    def __init__(self, name: str, holder: str):
        super().__init__(
            f"knowledge base '{name}' is open in another process ({holder}): one process writes a knowledge base; "
            "use that one (e.g. the running lorag serve's API) or stop it first"
        )
        self.name, self.holder = name, holder


class AlreadyExists(RagError, ValueError):
    """A knowledge base of that name exists."""


class InvalidName(RagError, ValueError):
    """A knowledge base name outside 1-64 of a-z, 0-9, '-' and '_'."""


class InvalidFilter(RagError, ValueError):
    """A retrieval filter with a bad key or value."""


class InvalidMode(RagError, ValueError):
    """A retrieval mode other than dense, bm25 or hybrid."""


class InvalidChunking(RagError, ValueError):
    """Chunking settings that cannot work; ``field`` is ``chunk_size`` or ``chunk_overlap``."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class EmbedderUnavailable(RagError, ValueError):
    """An embedder id or path that cannot be loaded."""


class LoaderError(RagError, ValueError):
    """A file that cannot be turned into a document."""


class UnsupportedFileType(LoaderError):
    """A file whose extension no loader reads."""


class UnreadableDocument(LoaderError):
    """A file of a supported type that holds no readable text."""


class DocumentTooLarge(LoaderError):
    """A file that unpacks to, or holds, more than the limits allow."""
