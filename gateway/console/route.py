"""The web console: the static files in ``gateway/console/static/`` served at ``/`` by the gateway itself.

The console is plain HTML, CSS and JavaScript modules (no build step) that talk to the public
API only, with the API key the user typed (kept in the browser's session storage). :func:`mount`
installs Starlette's ``StaticFiles`` (``html=True``, so ``/`` is ``index.html``) as the app
router's fallback rather than as a ``Mount("/")``: a mount at ``/`` would answer every path
and hide the routes included after it, whereas the fallback sees only what no route matched,
whatever the order routes are added in. GET and HEAD requests outside ``/v1/`` go to the files;
everything else keeps the router's own 404/405, so API clients still get OpenAI's error JSON.
This module knows nothing about the API the console calls.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import get_route_path
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).with_name("static")
API_PREFIX = "/v1/"


def mount(app: FastAPI) -> None:
    """Serve the console at ``/`` for the GET and HEAD requests that no route of ``app`` answers."""
    files = StaticFiles(directory=STATIC, html=True)
    fallback = app.router.default

    async def console(scope: Scope, receive: Receive, send: Send) -> None:
        wanted = scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
        if wanted and not get_route_path(scope).startswith(API_PREFIX):
            await files(scope, receive, send)
        else:
            await fallback(scope, receive, send)

    app.router.default = console
