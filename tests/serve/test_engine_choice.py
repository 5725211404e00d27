"""``load_engine``: which engine ``auto`` picks, and the log line when it falls back to the LocalEngine."""

import asyncio
import logging

import pytest

from serve import engines
from serve.engine import EngineError
from serve.engines import load_engine
from serve.local_engine import LocalEngine
from serve.vllm_engine import VllmEngine
from tests.fakes.vllm_server import FakeVllm


def choose(kind, model_dir, urls=None):
    async def go():
        chosen = await load_engine(kind, model_dir, "tiny", urls)
        await chosen.close()
        return chosen

    return asyncio.run(go())


def test_auto_on_a_machine_without_a_gpu_serves_locally_and_says_why(tiny_model_dir, monkeypatch, caplog):
    monkeypatch.setattr(engines, "gpu_available", lambda: False)
    monkeypatch.setattr(engines, "vllm_available", lambda: True)
    monkeypatch.setattr(VllmEngine, "start", lambda self: pytest.fail("vLLM started on a machine without a GPU"))
    with caplog.at_level(logging.INFO, logger="serve.engines"):
        assert isinstance(choose("auto", tiny_model_dir), LocalEngine)
    assert "no GPU: serving with the in-process transformers engine" in caplog.text


def test_auto_without_vllm_serves_locally_and_says_why(tiny_model_dir, monkeypatch, caplog):
    monkeypatch.setattr(engines, "gpu_available", lambda: True)
    monkeypatch.setattr(engines, "vllm_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="serve.engines"):
        assert isinstance(choose("auto", tiny_model_dir), LocalEngine)
    assert "vLLM is not installed: serving with the in-process transformers engine" in caplog.text


def test_auto_falls_back_when_the_vllm_server_does_not_start(tiny_model_dir, monkeypatch, caplog):
    async def broken(self):
        raise EngineError("vLLM server exited with status 1 while starting")

    monkeypatch.setattr(engines, "gpu_available", lambda: True)
    monkeypatch.setattr(engines, "vllm_available", lambda: True)
    monkeypatch.setattr(VllmEngine, "start", broken)
    with caplog.at_level(logging.ERROR, logger="serve.engines"):
        assert isinstance(choose("auto", tiny_model_dir), LocalEngine)
    assert "vLLM did not start (vLLM server exited with status 1 while starting)" in caplog.text


def test_vllm_never_falls_back(tiny_model_dir, monkeypatch):
    async def broken(self):
        raise EngineError("no server")

    monkeypatch.setattr(engines, "vllm_available", lambda: True)
    monkeypatch.setattr(VllmEngine, "start", broken)
    with pytest.raises(EngineError, match="no server"):
        choose("vllm", tiny_model_dir)


def test_vllm_asked_for_where_it_is_not_installed_says_how_to_install_it(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(engines, "vllm_available", lambda: False)
    monkeypatch.setattr(VllmEngine, "start", lambda self: pytest.fail("started a vLLM that is not installed"))
    with pytest.raises(EngineError, match="vLLM is not installed here: `make install-vllm`"):
        choose("vllm", tiny_model_dir)


def test_auto_with_urls_uses_those_servers(tiny_model_dir):
    server = FakeVllm("replica", "tiny").start()
    try:
        chosen = choose("auto", tiny_model_dir, [server.url])
    finally:
        server.stop()
    assert isinstance(chosen, VllmEngine) and chosen.urls == [server.url]


def test_an_unknown_engine_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown engine 'tgi'"):
        choose("tgi", tiny_model_dir)
