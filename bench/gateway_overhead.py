"""Gateway overhead: the latency and throughput lorag's gateway adds over its upstream, next to LiteLLM's.

A mock vLLM OpenAI server that answers at once with a fixed 16-token reply is the upstream of
three arms, each its own process on 127.0.0.1, each sent the same requests by the same load
generator (an async httpx client in this process, fixed concurrency, a warm-up first):

- direct: the mock itself, the floor the gateways are measured against;
- lorag: ``create_app`` over ``VllmEngine(urls=[mock])`` and an empty adapters folder, with API
  keys, adapter refresh and the admission limit off (``LORAG_*`` settings);
- litellm: the LiteLLM proxy (``litellm --config``) with the mock as an ``openai/`` model. Off:
  logging callbacks (``callbacks: []``), retries (``num_retries: 0``), the cost-map download at
  start (``LITELLM_LOCAL_MODEL_COST_MAP``) and logs below ERROR (``LITELLM_LOG``); no master key
  (``dangerously_permit_weak_or_unset_master_key``, as lorag runs without API keys) and no
  database, so no key checks, spend logs or budgets.

Every server is uvicorn with one worker, uvloop, httptools and no access log. For streaming
(SSE: 16 content chunks, then usage) and non-streaming requests the script reports latency p50
and p99 (streaming: to the last byte, and to the first token) and requests/s per arm, the latency
each gateway adds over direct, and the ratio lorag/LiteLLM of that added latency: below 1, lorag
adds less. The arms take turns in rounds, so a change in the machine's load falls on all of them
alike. An arm that answers wrongly or not within 10 s fails its mode, and the script exits 1 at
the end. Both gateways forward a non-streaming request as one (lorag's ``VllmEngine.generate``
asks vLLM unstreamed).

LiteLLM goes in a virtual environment of its own (it needs no torch), not in lorag's; httptools
gives its uvicorn the same HTTP parser as lorag's (without it, uvicorn falls back to h11):

    python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]' httptools
    python bench/gateway_overhead.py [--requests 2000] [--concurrency 8] [--litellm /tmp/litellm-venv/bin/litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from fastapi import FastAPI

from gateway.api.app import create_app
from gateway.settings import Settings
from serve.adapters import AdapterRegistry
from serve.vllm_engine import VllmEngine

MODEL = "gemma-3-270m"
HOST = "127.0.0.1"
TOKENS = [f"{' ' if i else ''}word{i}" for i in range(16)]
REPLY = "".join(TOKENS)
JSON = {"content-type": "application/json"}
TIMEOUT_S = 10  # the upstream answers at once: a request this slow has failed
ROUNDS = 4  # the arms take turns this many times per mode
STARTUP_TIMEOUT_S = 180
INSTALL_HINT = (
    "LiteLLM not found: install it in a separate venv (python3 -m venv /tmp/litellm-venv && "
    "/tmp/litellm-venv/bin/pip install 'litellm[proxy]' httptools) and pass --litellm /tmp/litellm-venv/bin/litellm"
)

# -- the mock upstream: a uvicorn ASGI app that answers with fixed bytes ---------------------


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    chunk = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    return f"data: {json.dumps(chunk | {'choices': choices} | ({'usage': usage} if usage else {}))}\n\n".encode()


USAGE = {"prompt_tokens": 8, "completion_tokens": len(TOKENS), "total_tokens": 8 + len(TOKENS)}
EVENTS = [
    _chunk({"role": "assistant", "content": TOKENS[0]}),
    *(_chunk({"content": token}) for token in TOKENS[1:-1]),
    _chunk({"content": TOKENS[-1]}, finish="length"),
    _chunk({}, usage=USAGE),
    b"data: [DONE]\n\n",
]
COMPLETION = json.dumps({
    "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "length"}],
    "usage": USAGE,
}).encode()  # fmt: skip
MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "mock"}]}).encode()
ROUTES = {  # path -> (content type, body); a streamed chat completion sends EVENTS instead
    "/v1/chat/completions": (b"application/json", COMPLETION),
    "/health": (b"text/plain", b""),
    "/v1/models": (b"application/json", MODELS),
    "/v1/load_lora_adapter": (b"text/plain", b"Success"),
    "/v1/unload_lora_adapter": (b"text/plain", b"Success"),
}


async def mock_upstream(scope, receive, send) -> None:
    """ASGI app: the routes of vLLM's OpenAI server that the arms use, answered at once."""
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    path = scope["path"]
    if path == "/v1/chat/completions" and json.loads(body).get("stream"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for event in EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    content_type, payload = ROUTES.get(path, (b"application/json", b'{"error": {"message": "not found"}}'))
    status = 200 if path in ROUTES else 404
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": payload})


def lorag_gateway() -> FastAPI:
    """uvicorn factory: lorag's gateway over the mock as its one vLLM replica, set up by ``LORAG_*`` variables."""
    settings = Settings()

    async def start() -> tuple[VllmEngine, AdapterRegistry]:
        # model_dir is only read when VllmEngine starts vLLM itself; with URLs any path will do.
        engine = await VllmEngine(settings.adapters_dir, settings.base_model, urls=settings.vllm_urls).start()
        return engine, AdapterRegistry(settings.adapters_dir, settings.base_model, "mock", engine.info.limits)

    return create_app(start, settings=settings)


# -- the servers: each its own process, stopped when the run ends however it ends ------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def launch(stack: ExitStack, name: str, command: list[str], ready: str, logs: Path, env: dict | None = None) -> None:
    """Start ``command`` (its own process group, output to ``logs/name.log``) and wait until ``ready`` answers 200."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    stack.callback(_stop, process)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if httpx.get(ready, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{name} did not start ({' '.join(command)}); its last output:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def uvicorn_command(app: str, port: int, *options: str) -> list[str]:
    here = str(Path(__file__).resolve().parent)
    return [
        sys.executable, "-m", "uvicorn", app, "--app-dir", here, "--host", HOST, "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log", *options,
    ]  # fmt: skip


def start_servers(stack: ExitStack, litellm: str, tmp: Path) -> dict[str, str]:
    """Start the mock, lorag's gateway and LiteLLM's proxy; their base URLs by arm."""
    ports = {arm: _free_port() for arm in ("direct", "lorag", "litellm")}
    urls = {arm: f"http://{HOST}:{port}" for arm, port in ports.items()}
    launch(stack, "mock", uvicorn_command("gateway_overhead:mock_upstream", ports["direct"], "--lifespan", "off"),
           f"{urls['direct']}/health", tmp)  # fmt: skip

    (tmp / "adapters").mkdir()
    lorag_env = os.environ | {
        "LORAG_BASE_MODEL": MODEL,
        "LORAG_VLLM_URLS": urls["direct"],
        "LORAG_ADAPTERS_DIR": str(tmp / "adapters"),
        "LORAG_API_KEYS": "",
        "LORAG_ADMIN_KEYS": "",
        "LORAG_ADAPTER_REFRESH_S": "0",
        "LORAG_MAX_CONCURRENT_REQUESTS": "0",
    }
    launch(stack, "lorag", uvicorn_command("gateway_overhead:lorag_gateway", ports["lorag"], "--factory"),
           f"{urls['lorag']}/healthz", tmp, lorag_env)  # fmt: skip

    config = {
        "model_list": [{
            "model_name": MODEL,
            "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{urls['direct']}/v1", "api_key": "x"},
        }],
        "litellm_settings": {"callbacks": [], "num_retries": 0, "request_timeout": 30},
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }  # fmt: skip
    (tmp / "litellm.yaml").write_text(yaml.safe_dump(config))
    litellm_env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    command = [litellm, "--config", str(tmp / "litellm.yaml"), "--host", HOST, "--port", str(ports["litellm"]),
               "--num_workers", "1"]  # fmt: skip
    launch(stack, "litellm", command, f"{urls['litellm']}/health/liveliness", tmp, litellm_env)
    return urls


# -- the load generator ----------------------------------------------------------------------


@dataclass
class Sample:
    """One arm's requests in one mode: seconds to the first token and to the last byte, and time spent."""

    firsts: list[float] = field(default_factory=list)
    lasts: list[float] = field(default_factory=list)
    seconds: float = 0.0


def request_body(stream: bool) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say sixteen words."}], "max_tokens": len(TOKENS)}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(body).encode()


async def complete(client: httpx.AsyncClient, body: bytes, stream: bool) -> tuple[float, float]:
    """Seconds to the first token and to the last byte of one completion, after checking its reply."""
    start = time.perf_counter()
    async with client.stream("POST", "/v1/chat/completions", content=body) as response:
        if response.status_code != 200:
            detail = (await response.aread()).decode(errors="replace")[:300]
            raise RuntimeError(f"answered {response.status_code}: {detail}")
        if stream:
            first, parts = None, []
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        if content := choice["delta"].get("content"):
                            first = first or time.perf_counter()
                            parts.append(content)
            last, text = time.perf_counter(), "".join(parts)
        else:
            data = await response.aread()
            first = last = time.perf_counter()
            text = json.loads(data)["choices"][0]["message"]["content"]
    if text != REPLY:
        raise RuntimeError(f"replied {text!r}, not {REPLY!r}")
    return first - start, last - start


async def drive(client: httpx.AsyncClient, body: bytes, stream: bool, count: int, concurrency: int, into: Sample):
    """Send ``count`` completions, ``concurrency`` at a time, and add their timings to ``into``."""
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            first, last = await complete(client, body, stream)
            into.firsts.append(first)
            into.lasts.append(last)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    into.seconds += time.perf_counter() - start


class ArmFailed(Exception):
    """An arm answered wrongly or not at all; the message says which and how."""


async def measure(urls: dict[str, str], stream: bool, requests: int, concurrency: int) -> dict[str, Sample]:
    """Warm every arm up, then let the arms take turns for ``ROUNDS`` rounds of ``requests / ROUNDS`` each."""
    body = request_body(stream)
    samples, warm_ups = {arm: Sample() for arm in urls}, {arm: Sample() for arm in urls}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with AsyncExitStack() as stack:
        clients = {
            arm: await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=JSON, limits=limits, timeout=TIMEOUT_S, trust_env=False)
            )
            for arm, url in urls.items()
        }

        async def run(arm: str, count: int, into: Sample) -> None:
            try:
                await drive(clients[arm], body, stream, count, concurrency, into)
            except Exception as e:
                why = f"no answer within {TIMEOUT_S} s" if isinstance(e, httpx.TimeoutException) else repr(e)
                done = len(warm_ups[arm].lasts) + len(samples[arm].lasts)
                mode = "streaming" if stream else "non-streaming"
                raise ArmFailed(f"the {arm} arm failed ({mode}, after {done} good requests): {why}") from e

        for arm in urls:
            await run(arm, max(requests // 10, concurrency), warm_ups[arm])
        for _ in range(ROUNDS):
            for arm in urls:
                await run(arm, -(-requests // ROUNDS), samples[arm])
    return samples


# -- the report ------------------------------------------------------------------------------


def summary(sample: Sample, stream: bool) -> dict[str, float]:
    """Latency percentiles in ms, and requests/s."""
    series = {"p50": (sample.lasts, 49), "p99": (sample.lasts, 98)}
    if stream:
        series |= {"ttft p50": (sample.firsts, 49), "ttft p99": (sample.firsts, 98)}
    stats = {name: statistics.quantiles(values, n=100)[cut] * 1000 for name, (values, cut) in series.items()}
    return stats | {"req/s": len(sample.lasts) / sample.seconds}


def report(title: str, samples: dict[str, Sample], stream: bool) -> None:
    stats = {arm: summary(sample, stream) for arm, sample in samples.items()}
    latencies = [name for name in stats["direct"] if name != "req/s"]
    added = {arm: {name: stats[arm][name] - stats["direct"][name] for name in latencies} for arm in stats}
    columns = [*latencies, "req/s", *(f"+{name}" for name in latencies)]
    print(f"\n{title}")
    print(f"{'arm':<8}" + "".join(f"{column:>11}" for column in columns))
    for arm in stats:
        cells = [f"{stats[arm][name]:11.2f}" for name in [*latencies, "req/s"]]
        cells += [f"{'-':>11}" if arm == "direct" else f"{added[arm][name]:+11.2f}" for name in latencies]
        print(f"{arm:<8}" + "".join(cells))
    ratios = [f"{name} {_ratio(added['lorag'][name], added['litellm'][name])}" for name in latencies]
    print("lorag/LiteLLM added latency: " + ", ".join(ratios), end="; ")
    print(f"req/s lorag/LiteLLM {_ratio(stats['lorag']['req/s'], stats['litellm']['req/s'])}")


def _ratio(ours: float, theirs: float) -> str:
    """``ours / theirs``; n/a where either is not above zero (an added latency lost in the noise)."""
    return f"{ours / theirs:.2f}x" if ours > 0 and theirs > 0 else "n/a"


def litellm_version(url: str) -> str:
    body = request_body(stream=False)
    response = httpx.post(f"{url}/v1/chat/completions", content=body, headers=JSON, timeout=30, trust_env=False)
    return response.headers.get("x-litellm-version", "unknown")


def benchmark(litellm: str, requests: int, concurrency: int) -> bool:
    """Start the servers, measure both modes and print their tables; False if an arm failed."""
    failed = False
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-overhead-")))
        print("starting the mock upstream, lorag's gateway and LiteLLM's proxy ...", flush=True)
        urls = start_servers(stack, litellm, tmp)
        load = os.getloadavg()[0]
        print(
            f"lorag {importlib.metadata.version('lorag')}, LiteLLM {litellm_version(urls['litellm'])}; "
            f"{os.cpu_count()} CPUs, load average {load:.2f} at start"
        )
        for stream in (True, False):
            mode = "streaming" if stream else "non-streaming"
            print(f"measuring {mode} ...", flush=True)
            try:
                samples = asyncio.run(measure(urls, stream, requests, concurrency))
            except ArmFailed as e:
                print(f"\n{mode}: error: {e}", flush=True)
                failed = True
                continue
            title = (
                f"{mode}, {len(TOKENS)}-token reply, concurrency {concurrency}, "
                f"{len(samples['direct'].lasts)} requests per arm; latency in ms"
                + (" (p50/p99: last byte; ttft: first token)" if stream else "")
            )
            report(title, samples, stream)
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end ({load:.2f} at start)")
    return not failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per arm and mode")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--litellm", default="litellm", help="the LiteLLM executable (default: litellm on PATH)")
    args = parser.parse_args()
    litellm = shutil.which(args.litellm)
    if litellm is None:
        sys.exit(INSTALL_HINT)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the servers as on Ctrl-C
    try:
        ok = benchmark(litellm, args.requests, args.concurrency)
    except KeyboardInterrupt:
        sys.exit("interrupted; the servers it started are stopped")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
