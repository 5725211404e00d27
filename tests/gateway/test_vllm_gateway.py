"""The gateway over VllmEngine over a fake vLLM: upstream connections are returned, not leaked."""

import json

from openai import OpenAI

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.vllm_engine import VllmEngine
from tests.fakes.vllm_server import FakeVllm
from tests.gateway.conftest import fake_settings, serving


def test_many_requests_do_not_exhaust_the_upstream_connection_pool(tmp_path):
    upstream = FakeVllm("replica-0", "base").start()
    engines = []

    async def start():
        engine = await VllmEngine("unused", "base", urls=[upstream.url]).start()
        engines.append(engine)
        return engine, AdapterRegistry(tmp_path, "base", "0" * 64, engine.info.limits)

    app = create_app(start, settings=fake_settings(tmp_path))
    try:
        with serving(app) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=10)
            messages = [{"role": "user", "content": "hi"}]
            for _ in range(150):
                reply = client.chat.completions.create(model="base", messages=messages, max_tokens=8)
                assert reply.choices[0].message.content == "base answers from replica-0"
            for _ in range(20):
                assert len(list(client.chat.completions.create(model="base", messages=messages, stream=True))) > 2
            connector = engines[0]._client().connector  # every response went back to the pool: none held, few kept
            kept = [connection for connections in connector._conns.values() for connection in connections]
            assert not connector._acquired and len(kept) <= 2, json.dumps([str(c) for c in kept])
    finally:
        upstream.stop()
