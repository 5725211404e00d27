"""Gateway fixtures: the app served by uvicorn on loopback in a thread, over the fake engine or a real one."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from gateway.api.app import create_app
from gateway.cli.loopback import serving
from gateway.settings import Settings
from serve.adapters import AdapterRegistry
from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine, write_adapter


@dataclass
class Served:
    url: str
    engine: FakeEngine
    adapters_dir: Path

    def client(self, key: str = "no-key") -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=10)

    def async_client(self, key: str = "no-key") -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=10)

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def fake_settings(adapters_dir: Path, **overrides) -> Settings:
    """Settings for a test: no keys, no polling, knowledge bases beside ``adapters_dir`` on the hashing embedder."""
    values = {
        "adapters_dir": adapters_dir, "api_keys": [], "admin_keys": [], "adapter_refresh_s": 0,
        "kb_dir": adapters_dir.with_name(f"{adapters_dir.name}-kbs"), "embedder": "hashing-256",
        "jobs_dir": adapters_dir.with_name(f"{adapters_dir.name}-jobs"),
        "responses_dir": adapters_dir.with_name(f"{adapters_dir.name}-responses"),
    }  # fmt: skip
    return Settings(**(values | overrides))


@pytest.fixture
def adapters_dir(tmp_path) -> Path:
    """An adapters folder with 'alpha' and 'beta' for the fake base model."""
    folder = tmp_path / "adapters"
    for name in ("alpha", "beta"):
        write_adapter(folder / name)
    return folder


@pytest.fixture
def make_gateway(adapters_dir):
    """``make_gateway(engine=None, **settings)``: the app over a FakeEngine, served until the test ends."""
    with ExitStack() as stack:

        def make(engine: FakeEngine | None = None, **settings) -> Served:
            engine = engine or FakeEngine()
            registry = AdapterRegistry(adapters_dir, engine.info.base_model, FAKE_SHA256, engine.info.limits)
            app = create_app(engine, registry, fake_settings(adapters_dir, **settings))
            return Served(stack.enter_context(serving(app)), engine, adapters_dir)

        yield make


@pytest.fixture
def gateway(make_gateway) -> Served:
    """The gateway over a FakeEngine with adapters 'alpha' and 'beta', no API keys."""
    return make_gateway()
