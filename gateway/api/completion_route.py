"""The completion routes' short way: POST /v1/chat/completions and /v1/completions answered from ASGI.

:class:`CompletionRoute` is ASGI middleware inside :class:`~gateway.api.admission.Admission`, so
the key, its rate limits and scopes, the body's size, time and Unicode, and the slot are checked
before it, as for every /v1 route. A well-formed request then skips FastAPI's routing, dependency
solving and exception middleware: its body is parsed with orjson and validated by the same request
model in the same (python) mode as FastAPI would, and handed to
:meth:`~gateway.api.completions.Completions.respond`; the engine's and the gateway's errors leave
as OpenAI's error JSON by the app's own mapping (:func:`gateway.errors.as_lorag_error`); anything
else reaches the app's 500 handler as before. A body that is not JSON by its Content-Type, does
not parse, or fails validation goes on to FastAPI's route untouched, which answers it exactly as
it always did (the 400 naming the field); that route also documents both paths in the OpenAPI
schema. This module knows nothing about engines.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import error_handlers
from gateway.api.admission import replay
from gateway.api.protocol import ChatCompletionRequest, CompletionRequest
from gateway.api.routes import serialized
from gateway.errors import LAYER_ERRORS, LoragError, as_lorag_error

ROUTES = {"/v1/chat/completions": ChatCompletionRequest, "/v1/completions": CompletionRequest}
ANSWERED = (LoragError, *LAYER_ERRORS)  # what the app's exception handlers answer (others are its 500)


class CompletionRoute:
    """See the module docstring."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if model is None or not _json(scope):
            return await self.app(scope, receive, send)
        chunks, message = [], {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer
            chunks.append(message.get("body", b""))
        body = b"".join(chunks)
        try:
            request_body = model.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return await self.app(scope, replay(body, receive), send)
        request = Request(scope, receive)
        try:
            completions, _ = request.app.state.gateway.ready()
            response = serialized(await completions.respond(request_body, request))
        except ANSWERED as error:
            response = error_handlers.response(as_lorag_error(error))
        await response(scope, receive, send)


def _json(scope: Scope) -> bool:
    """Whether the Content-Type is one FastAPI reads as JSON: ``application/json`` or ``application/*+json``."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind, _, subtype = value.split(b";", 1)[0].strip().lower().partition(b"/")
            return kind == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))
    return False
