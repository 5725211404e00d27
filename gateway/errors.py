"""One error type, :class:`LoragError`, and the handlers that turn every failure into OpenAI's error JSON.

``{"error": {"message", "type", "param", "code"}}`` with the status an OpenAI client expects:
400 invalid parameters (pydantic's validation errors included, naming the parameter), 401 a
missing or unknown API key, 403 a valid key without admin rights, 404 an unknown model
(``model_not_found``), 429 overloaded (with ``Retry-After``), 503 the engine cannot serve. This
module knows nothing about engines beyond their two exception types, nor about routes.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serve.engine import EngineError, InvalidRequest, UnknownAdapter

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

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


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


def as_lorag_error(error: Exception) -> LoragError:
    """The OpenAI-shaped form of an exception raised while serving a request."""
    if isinstance(error, LoragError):
        return error
    if isinstance(error, UnknownAdapter):
        return model_not_found(f"The model '{error.args[0]}' does not exist or was just unloaded")
    if isinstance(error, InvalidRequest):
        return invalid(None, str(error))
    if isinstance(error, EngineError):
        return engine_unavailable(str(error))
    log.error("internal error while serving a request", exc_info=error)
    return LoragError(500, f"internal error: {type(error).__name__}", type="server_error", code="internal_error")


def param_of(loc: tuple) -> str | None:
    """``("body", "messages", 0, "role")`` -> ``"messages[0].role"``; None for the body as a whole."""
    param = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        param += f"[{part}]" if isinstance(part, int) else f".{part}" if param else str(part)
    return param or None


def install(app: FastAPI) -> None:
    """Register handlers so every error leaves as OpenAI's error JSON."""

    @app.exception_handler(LoragError)
    async def lorag_error(request: Request, error: LoragError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        param = param_of(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if first.get("type") == "json_invalid":
            param, message = None, "the request body is not valid JSON"
        elif param is None:
            message = f"invalid request body: {message}"
        else:
            message = f"Invalid '{param}': {message}"
        return invalid(param, message).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = "not_found" if error.status_code == 404 else "invalid_request_error"
        return LoragError(error.status_code, str(error.detail), type=kind, headers=error.headers).response()

    @app.exception_handler(UnknownAdapter)
    @app.exception_handler(InvalidRequest)
    @app.exception_handler(EngineError)
    async def engine_error(request: Request, error: Exception) -> JSONResponse:
        return as_lorag_error(error).response()

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return as_lorag_error(error).response()
