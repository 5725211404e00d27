"""The exception handlers that make every failure of the app leave as OpenAI's error JSON.

A :class:`~gateway.errors.LoragError` leaves as it is; pydantic's validation errors become a
400 naming the parameter (``messages[0].role``); Starlette's own 404/405 keep their status; any
other exception goes through :func:`gateway.errors.as_lorag_error`, whose table knows the
engines' and the knowledge bases' errors (anything else is a 500 ``internal_error``). This
module knows nothing about routes.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gateway.errors import LAYER_ERRORS, LoragError, as_lorag_error, invalid


def response(error: LoragError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def param_of(loc: tuple) -> str | None:
    """``("body", "messages", 0, "role")`` -> ``"messages[0].role"``; None for the body as a whole."""
    param = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        param += f"[{part}]" if isinstance(part, int) else f".{part}" if param else str(part)
    return param or None


def install(app: FastAPI) -> None:
    """Register handlers so every error leaves as OpenAI's error JSON."""

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
        return response(invalid(param, message))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = "not_found" if error.status_code == 404 else "invalid_request_error"
        return response(LoragError(error.status_code, str(error.detail), type=kind, headers=error.headers))

    async def mapped(request: Request, error: Exception) -> JSONResponse:
        return response(as_lorag_error(error))

    for kind in (LoragError, *LAYER_ERRORS):  # handled here, not by Starlette's 500 middleware (which re-raises)
        app.add_exception_handler(kind, mapped)
    app.add_exception_handler(Exception, mapped)
