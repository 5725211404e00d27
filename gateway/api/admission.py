"""What a /v1 request passes before any route sees it: a known key, a whole body in time, Unicode text, a free slot.

:class:`Admission` is ASGI middleware, in this order, so that nobody without a key can hold
anything and only admitted work is counted:

1. the API key is checked from the headers alone (401 before a byte of the body is read), and
   the key's rate limits (429, :mod:`gateway.api.rate_limits`); the caller's
   :class:`~gateway.api.auth.Principal` is put on the request's state;
2. every body but an upload, whatever its Content-Type, is read whole within ``body_timeout_s``
   (408 ``request_timeout`` for a client that stalls) and ``max_body_bytes`` (413), then replayed
   to the route; its text must be Unicode: a lone surrogate escape such as ``"\\ud800"`` is 400
   naming the field, not an error deep in a tokenizer;
3. completions beyond ``limit`` in flight are 429 with ``Retry-After`` (0: no limit).

Multipart uploads stream to their route, which bounds their size itself; a stall of
``body_timeout_s`` between two parts of one is 408. This module knows nothing
about routes beyond which paths are completions.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi.security import HTTPAuthorizationCredentials

from gateway.api import error_handlers
from gateway.api.auth import ApiKeys
from gateway.api.metrics import Metrics
from gateway.api.rate_limits import RateLimits
from gateway.errors import LoragError, invalid, overloaded

COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses"})
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class Admission:
    """See the module docstring."""

    def __init__(
        self,
        app,
        keys: ApiKeys,
        limits: RateLimits,
        metrics: Metrics,
        limit: int,
        body_timeout_s: float,
        max_body_bytes: int,
    ):
        self.app, self.keys, self.limits, self.metrics, self.limit = app, keys, limits, metrics, limit
        self.body_timeout_s, self.max_body_bytes = body_timeout_s, max_body_bytes
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        try:
            scope.setdefault("state", {})["principal"] = principal = self.keys.identify(_bearer(scope))
            self.limits.admit(principal)
            body = _body_kind(scope)
            if body == "whole":
                read = await self._body(receive)
                _check_unicode(read)
                receive = replay(read, receive)
            elif body == "multipart":
                receive, send = _Stall(receive, send, self.body_timeout_s).wrap(scope)
        except LoragError as error:
            self.metrics.rejected.labels(error.code or "invalid").inc()
            return await error_handlers.response(error)(scope, receive, send)
        if scope["path"] not in COMPLETION_PATHS:
            return await self.app(scope, receive, send)
        if self.limit and self.in_flight >= self.limit:
            self.metrics.rejected.labels("overloaded").inc()
            return await error_handlers.response(overloaded(self.limit))(scope, receive, send)
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    async def _body(self, receive) -> bytes:
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise LoragError(499, "the client closed the request", code="client_closed_request")
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_body_bytes:
                        raise LoragError(
                            413, f"the request body is over the limit of {self.max_body_bytes / 2**20:g} MiB",
                            code="request_too_large",
                        )  # fmt: skip
                    if not message.get("more_body"):
                        return b"".join(chunks)
        except TimeoutError:
            raise LoragError(
                408, f"the request body did not arrive within {self.body_timeout_s:g} s", code="request_timeout"
            ) from None


def _bearer(scope) -> HTTPAuthorizationCredentials | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
    return None


def _body_kind(scope) -> str:
    """``multipart`` (an upload, streamed to its route), ``whole`` (any other body: read and checked here), or
    ``none`` (a method without a body)."""
    if scope["method"] not in ("POST", "PUT", "PATCH"):
        return "none"
    types = [value for name, value in scope["headers"] if name == b"content-type"]
    return "multipart" if types and types[0].split(b";")[0].strip().lower() == b"multipart/form-data" else "whole"


class _Stall:
    """An upload's ``receive`` that gives up when the client sends nothing for ``seconds`` (an upload may take
    longer than that in all, but not stall), and a ``send`` that then answers 408, whatever the route made of
    its cut-short body."""

    def __init__(self, receive, send, seconds: float):
        self.receive, self.send, self.seconds = receive, send, seconds
        self.error: LoragError | None = None

    def wrap(self, scope):
        async def receive():
            try:
                async with asyncio.timeout(self.seconds):
                    return await self.receive()
            except TimeoutError:
                self.error = LoragError(408, f"the upload stalled for {self.seconds:g} s", code="request_timeout")
                raise self.error from None

        async def send(message):
            if self.error is None:
                return await self.send(message)
            if message["type"] == "http.response.start":
                await error_handlers.response(self.error)(scope, self.receive, self.send)

        return receive, send


def _check_unicode(body: bytes) -> None:
    """400 naming the field whose text holds a lone surrogate (only looked for when the body escapes one)."""
    if not _SURROGATE_ESCAPE.search(body):
        return
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return  # not JSON: the route's validation says so
    path = _lone_surrogate(value, "")
    if path is not None:
        raise invalid(
            path or None, f"Invalid '{path or 'body'}': the text holds a lone surrogate, which is not Unicode"
        )


def _lone_surrogate(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if (found := _lone_surrogate(item, where)) is not None:
            return found
    return None


def replay(body: bytes, receive):
    """A ``receive`` that gives the body read already, then the client's later messages (a disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
