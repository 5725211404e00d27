"""One error type, :class:`LoragError`, and the one table that turns the lower layers' errors into it.

A ``LoragError`` carries what OpenAI's error JSON needs, ``{"error": {"message", "type", "param",
"code"}}``, and the status an OpenAI client expects: 400 invalid parameters, 401 a missing or
unknown API key, 403 a valid key without admin rights, 404 an unknown model or object, 409 a
name taken or a knowledge base another process writes, 413/415 an upload too large or of an
unsupported type, 429 overloaded (with ``Retry-After``), 503 the engine cannot serve. The
engines (``serve.engine``) and the knowledge bases (``rag.errors``) raise their own typed
errors; :func:`as_lorag_error` maps each class to its status, code and request field in
:data:`LAYER_ERRORS`, so no field is guessed from a message. Every room of the gateway may
import this module; it knows nothing about routes or FastAPI (``gateway.api.error_handlers``
installs the handlers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rag import errors as rag
from serve.engine import ContextLengthExceeded, EngineError, InvalidRequest, UnknownAdapter

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1  # what an overloaded gateway asks clients to wait


class LoragError(Exception):
    """A request the gateway answers with an error; ``status`` and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(param: str | None, message: str) -> LoragError:
    """400 for one request parameter."""
    return LoragError(400, message, param=param, code="invalid_value")


def model_not_found(message: str) -> LoragError:
    return LoragError(404, message, param="model", code="model_not_found")


def overloaded(limit: int) -> LoragError:
    return LoragError(
        429,
        f"lorag is serving its maximum of {limit} concurrent requests; retry in {RETRY_AFTER_S} s",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def engine_unavailable(reason: str) -> LoragError:
    return LoragError(
        503, f"the engine cannot serve right now: {reason}", type="server_error", code="engine_unavailable"
    )


def too_large(filename: str, limit: int) -> LoragError:
    return LoragError(
        413, f"{filename}: over the upload limit of {limit / 2**20:g} MiB", param="files", code="file_too_large"
    )


@dataclass(frozen=True)
class Mapped:
    """How one lower-layer error class reaches the client."""

    status: int
    code: str
    param: str | Callable[[Exception], str] | None = None
    type: str = "invalid_request_error"
    message: Callable[[Exception], str] = str


CHUNKING_PARAMS = {"chunk_size": "chunk_tokens", "chunk_overlap": "chunk_overlap"}  # rag's names -> the API's

LAYER_ERRORS: dict[type[Exception], Mapped] = {
    UnknownAdapter: Mapped(
        404, "model_not_found", "model",
        message=lambda e: f"The model '{e.args[0]}' does not exist or was just unloaded",
    ),
    ContextLengthExceeded: Mapped(400, "context_length_exceeded", "messages"),
    InvalidRequest: Mapped(400, "invalid_value"),
    EngineError: Mapped(
        503, "engine_unavailable", type="server_error", message=lambda e: f"the engine cannot serve right now: {e}"
    ),
    rag.KnowledgeBaseNotFound: Mapped(404, "knowledge_base_not_found"),
    rag.DocumentNotFound: Mapped(404, "document_not_found"),
    rag.AlreadyExists: Mapped(409, "knowledge_base_exists", "name"),
    rag.KnowledgeBaseLocked: Mapped(409, "knowledge_base_locked"),
    rag.InvalidName: Mapped(400, "invalid_value", "name"),
    rag.InvalidFilter: Mapped(400, "invalid_value", "filters"),
    rag.InvalidMode: Mapped(400, "invalid_value", "mode"),
    rag.InvalidChunking: Mapped(400, "invalid_value", lambda e: CHUNKING_PARAMS[e.field]),
    rag.EmbedderUnavailable: Mapped(400, "invalid_value", "embedder"),
    rag.UnsupportedFileType: Mapped(415, "unsupported_file_type", "files"),
    rag.DocumentTooLarge: Mapped(413, "file_too_large", "files"),
    rag.LoaderError: Mapped(400, "unreadable_document", "files"),
}  # fmt: skip
"""Lower-layer error class -> its status, code and field; a subclass not listed takes its nearest base's entry."""


def as_lorag_error(error: Exception) -> LoragError:
    """The OpenAI-shaped form of an exception raised while serving a request (500 for anything unexpected)."""
    if isinstance(error, LoragError):
        return error
    for kind in type(error).__mro__:
        if (mapped := LAYER_ERRORS.get(kind)) is not None:
            param = mapped.param(error) if callable(mapped.param) else mapped.param
            return LoragError(mapped.status, mapped.message(error), mapped.type, param, mapped.code)
    log.error("internal error while serving a request", exc_info=error)
    return LoragError(500, f"internal error: {type(error).__name__}", type="server_error", code="internal_error")
