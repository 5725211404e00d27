"""`lorag serve` as a user runs it: the tiny model and an adapter from the folder, served with LocalEngine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from openai import OpenAI

LORAG = str(Path(sys.executable).parent / "lorag")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(tiny_raw_dir, tiny_model_dir, adapters_dir, **settings) -> tuple[subprocess.Popen, int]:
    """`lorag serve --engine local` on the prepared tiny model, once /healthz is 200: the process and its port."""
    env = (
        os.environ
        | {
            "LORAG_BASE_MODEL": str(tiny_raw_dir),
            "LORAG_CACHE_DIR": str(tiny_model_dir.parent.parent),  # already prepared there
            "LORAG_ADAPTERS_DIR": str(adapters_dir),
            "HF_HUB_OFFLINE": "1",
        }
        | {f"LORAG_{name.upper()}": value for name, value in settings.items()}
    )
    port = free_port()
    command = [LORAG, "serve", "--engine", "local", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not _healthy(port):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"lorag serve never became healthy: {server.communicate()[0]}")
        time.sleep(0.2)
    return server, port


def test_serve_runs_the_gateway_until_interrupted(tiny_raw_dir, tiny_model_dir, random_adapters, tmp_path):
    shutil.copytree(random_adapters["alpha"], tmp_path / "adapters" / "alpha")
    server, port = start_serve(tiny_raw_dir, tiny_model_dir, tmp_path / "adapters", api_keys="k1,k2")
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k2", max_retries=0)
        assert {m.id for m in client.models.list()} == {str(tiny_raw_dir), "alpha"}
        hello = [{"role": "user", "content": "Hi"}]
        reply = client.chat.completions.create(model="alpha", messages=hello, max_tokens=4)
        assert reply.usage.completion_tokens > 0
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert "Application shutdown complete" in output and server.returncode in (0, 130), output  # 130: re-raised SIGINT


def test_sigterm_stops_the_server_within_seconds_even_mid_generation(tiny_raw_dir, tiny_model_dir, tmp_path):
    server, port = start_serve(tiny_raw_dir, tiny_model_dir, tmp_path / "adapters", shutdown_timeout_s="2")
    try:
        generating = httpx.stream(
            "POST", f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
            json={"model": str(tiny_raw_dir), "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 400,
                  "n": 8, "temperature": 1, "stream": True},
        )  # fmt: skip
        with generating as stream, socket.create_connection(("127.0.0.1", port)) as stalled:
            next(stream.iter_lines())  # generating now
            stalled.sendall(  # and a client that never finishes its body: the body timeout is 30 s
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            output = server.communicate(timeout=60)[0]
    finally:
        if server.poll() is None:
            server.kill()
    assert time.monotonic() - stopping < 15 and "Application shutdown complete" in output, output


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    except httpx.ConnectError:
        return False


def test_serve_refuses_an_unknown_engine(tmp_path):
    out = subprocess.run([LORAG, "serve", "--engine", "nope"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip() == "error: unknown engine 'nope': choose auto, vllm or local"
    assert "serve" in subprocess.run([LORAG, "--help"], capture_output=True, text=True, timeout=120).stdout


def test_serve_stops_with_one_line_when_the_engine_cannot_start(tiny_raw_dir, tiny_model_dir, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from gateway.cli import main as cli
    from serve import engines
    from serve.engine import EngineError

    async def no_engine(*args, **kwargs):
        raise EngineError("vLLM server exited with status 1 while starting")

    monkeypatch.setattr(engines, "load_engine", no_engine)
    monkeypatch.setenv("LORAG_BASE_MODEL", str(tiny_raw_dir))
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tiny_model_dir.parent.parent))
    monkeypatch.setenv("LORAG_ADAPTERS_DIR", str(tmp_path))
    out = CliRunner().invoke(cli.app, ["serve", "--engine", "vllm", "--port", str(free_port())])
    assert out.exit_code == 1
    assert "error: the engine failed to start: EngineError: vLLM server exited with status 1" in out.output
