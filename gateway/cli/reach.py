"""How a command reaches a lorag gateway over HTTP: a running one, or one started in process for its duration.

``lorag compare`` and ``lorag pairs`` talk to the gateway the way any OpenAI client does. With
``--base-url`` they use that server and the ``--api-key`` given; without, :func:`gateway_at`
starts the configured gateway (base model, engine, adapters folder, knowledge bases, as ``lorag
serve`` would) on a free loopback port and uses its first configured API key, if there are keys.
:func:`api_errors` turns the errors of reaching it (refused key, unreachable, an error status)
into one line on stderr. Heavy imports (the app, openai) happen only when these run. This module
knows nothing about what the commands ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gateway.cli.common import fail
from gateway.settings import get_settings

STARTUP_TIMEOUT_S = 900.0  # an in-process vLLM can take minutes to boot


@contextmanager
def gateway_at(base_url: str | None, api_key: str | None, engine: str | None) -> Iterator[tuple[str, str | None]]:
    """``(url, key)`` of the gateway to use: ``base_url`` and ``api_key``, or one started in process meanwhile."""
    if base_url:
        yield base_url.rstrip("/").removesuffix("/v1"), api_key
        return
    from gateway.api.app import create_app
    from gateway.cli.engine_starter import engine_starter
    from gateway.cli.loopback import NotReady, serving

    settings = get_settings()
    own_keys = [key.get_secret_value() for key in settings.api_keys + settings.admin_keys]
    start = engine_starter(engine)
    try:
        with serving(create_app(start, settings=settings), timeout_s=STARTUP_TIMEOUT_S) as url:
            yield url, next(iter(own_keys), None)
    except NotReady as e:
        fail(str(e))


@contextmanager
def api_errors(url: str) -> Iterator[None]:
    """Fail in one line when the gateway at ``url`` refuses the key, cannot be reached or answers an error."""
    import openai

    try:
        yield
    except openai.AuthenticationError:
        fail(f"the gateway at {url} refused the API key: pass a valid one with --api-key")
    except openai.APIConnectionError:
        fail(f"cannot reach the gateway at {url}")
    except openai.APIStatusError as e:
        fail(f"the gateway at {url} answered {e.status_code}: {e.message}")
