"""Serve an ASGI app with uvicorn on a free loopback port, in a thread of this process.

``lorag compare`` uses it to run the gateway in process and talk to it over HTTP like any
client; the tests use it to serve the app under test. This module knows nothing about what the
app serves beyond its ``/healthz`` route.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn


class NotReady(RuntimeError):
    """The server did not start, or its engine did not become ready (the message says why)."""


@contextmanager
def serving(app, wait_ready: bool = True, timeout_s: float = 30.0) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 on a free port; yield its base URL, once ``/healthz`` is 200 if ``wait_ready``."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise NotReady("uvicorn did not start")
            time.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        while wait_ready and not _healthy(url):
            if time.monotonic() > deadline:
                raise NotReady(f"the gateway was not ready within {timeout_s:.0f} s")
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def _healthy(url: str) -> bool:
    """True once ``/healthz`` is 200; :class:`NotReady` if the engine failed to start."""
    response = httpx.get(f"{url}/healthz", timeout=5)
    if response.status_code == 200:
        return True
    body = response.json()
    if body.get("status") == "failed":
        raise NotReady(f"the engine failed to start: {body.get('error')}")
    return False
