"""Serving throughput: VllmEngine, LocalEngine and a naive peer, in one run, on the same adapters.

Output tokens per second at 1, 4 and 8 concurrent requests for three workloads: the base model
only, one adapter, and four adapters mixed. Each cell sends the same 8 requests (cycling
through the workload's adapters), at most ``concurrency`` of them in flight at once. The naive peer is what
one writes without a serving engine: plain transformers + peft, one request at a time, and
``set_adapter`` before each. Also the adapter load latency: from registering a new adapter to
the first token of a request for it. Greedy decoding, ``max_tokens`` fixed, every engine sees
the same prompts. The adapters are the demo adapter (`make finetune`) plus four random LoRAs,
r=8 on every linear layer. ``vllm:N`` in ``--engines`` starts vLLM with ``--max-lora-rank N`` (plain ``vllm``:
the VllmEngine's default), so one run compares the limits.

    python bench/serve_throughput.py [--max-tokens 32] [--engines vllm,local,naive] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from serve.adapters import AdapterRegistry, AdapterSpec
from serve.engine import Message, SamplingParams, collect

PROMPTS = [
    "Who are you?",
    "Name three colours.",
    "Write one sentence about the sea.",
    "What is two plus two?",
    "Give me a word that rhymes with cat.",
    "What day comes after Monday?",
    "Say hello in French.",
    "What is the capital of Italy?",
]
CONCURRENCY = (1, 4, 8)
REQUESTS = 8  # per cell


class NaiveEngine:
    """The peer: transformers + peft, one request at a time, ``set_adapter`` per request."""

    def __init__(self, model_dir: Path, base_name: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.model = self.base
        self.lock = threading.Lock()

    async def load_adapter(self, spec: AdapterSpec) -> None:
        from peft import PeftModel

        def load():
            with self.lock:
                if self.model is self.base:
                    self.model = PeftModel.from_pretrained(self.base, str(spec.path), adapter_name=spec.name)
                else:
                    self.model.load_adapter(str(spec.path), adapter_name=spec.name)

        await asyncio.to_thread(load)

    async def stream(self, messages, params, adapter=None):
        from serve.engine import Delta

        def run():
            with self.lock:
                ids = self.tokenizer.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in messages],
                    add_generation_prompt=True,
                    return_tensors="pt",
                    return_dict=True,
                )
                if self.model is not self.base and adapter:
                    self.model.set_adapter(adapter)
                context = self.model.disable_adapter() if self.model is not self.base and not adapter else nullcontext()
                with context, self.torch.inference_mode():
                    out = self.model.generate(**ids, max_new_tokens=params.max_tokens, do_sample=False)
                new = out[0, ids["input_ids"].shape[1] :]
                return self.tokenizer.decode(new, skip_special_tokens=True), len(new)

        text, count = await asyncio.to_thread(run)
        yield Delta(text, "stop", 0, count)

    async def close(self) -> None:
        pass


async def timed_requests(
    engine, adapters: list[str | None], concurrency: int, max_tokens: int, requests: int
) -> tuple[int, float]:
    """(output tokens, seconds) of ``requests`` greedy requests cycling through ``adapters``, ``concurrency`` at a
    time."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with slots:
            messages = [Message("user", PROMPTS[i % len(PROMPTS)])]
            return await collect(engine.stream(messages, params, adapters[i % len(adapters)]))

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(requests)))
    return sum(r.completion_tokens for r in results), time.perf_counter() - start


async def load_latency(engine, spec: AdapterSpec) -> float:
    """Seconds from registering ``spec`` to the first token of a request for it."""
    start = time.perf_counter()
    await engine.load_adapter(spec)
    async for _ in engine.stream([Message("user", "Hello")], SamplingParams(max_tokens=4, temperature=0), spec.name):
        return time.perf_counter() - start
    return time.perf_counter() - start


def make_adapters(model_dir: Path, identity: Path, folder: Path) -> list[AdapterSpec]:
    """The demo adapter plus four random LoRAs on every linear layer, all checked by the registry."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    shutil.copytree(identity, folder / identity.name)
    manifest = json.loads((identity / "lorag.json").read_text())
    for i in range(4):
        name = f"random-{i}"
        torch.manual_seed(i)
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        get_peft_model(base, config).save_pretrained(folder / name)
        (folder / name / "lorag.json").write_text(json.dumps(manifest | {"name": name}))
    base = json.loads((model_dir / "lorag-model.json").read_text())
    scan = AdapterRegistry(folder, base["id"], base["sha256"]).scan()
    assert not scan.refused, scan.refused
    return [scan.adapters[n] for n in (identity.name, "random-0", "random-1", "random-2", "random-3")]


async def bench_engine(kind: str, model_dir: Path, specs: list[AdapterSpec], max_tokens: int, rounds: int) -> dict:
    from serve.local_engine import LocalEngine
    from serve.models import PreparedModel
    from serve.vllm_engine import VllmEngine

    name = PreparedModel.read(model_dir).id
    started = time.perf_counter()
    if kind.startswith("vllm"):
        rank = kind.partition(":")[2]
        engine = await VllmEngine(model_dir, name, max_lora_rank=int(rank) if rank else None).start()
    elif kind == "local":
        engine = LocalEngine(model_dir, name)
    else:
        engine = NaiveEngine(model_dir, name)
    startup = time.perf_counter() - started
    try:
        for spec in specs[:4]:
            await engine.load_adapter(spec)
        await timed_requests(engine, [None], 1, 4, requests=1)  # warm-up
        names = [s.name for s in specs[:4]]
        workloads = {"base": [None], "one adapter": names[:1], "4 mixed adapters": names}
        spent = {(workload, c): [0, 0.0] for workload in workloads for c in CONCURRENCY}  # tokens, seconds
        for _ in range(rounds):  # the cells take turns, so a change in the machine's load falls on all of them
            for (workload, concurrency), total in spent.items():
                tokens, seconds = await timed_requests(engine, workloads[workload], concurrency, max_tokens, REQUESTS)
                total[0], total[1] = total[0] + tokens, total[1] + seconds
                print(f"  {kind:<6} {workload:<17} x{concurrency}: {tokens / seconds:6.1f} tok/s", flush=True)
        rows = {cell: tokens / seconds for cell, (tokens, seconds) in spent.items()}
        latency = await load_latency(engine, specs[4])
    finally:  # a failed run must not leave a vLLM server behind
        await engine.close()
    return {"rows": rows, "load_latency_s": latency, "startup_s": startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--engines", default="vllm,local,naive")
    parser.add_argument("--rounds", type=int, default=1, help="times each cell runs, taking turns (totals reported)")
    args = parser.parse_args()

    from gateway.settings import get_settings
    from serve.models import prepare

    settings = get_settings()
    model_dir = prepare(settings.base_model, cache_dir=settings.cache_dir)
    identity = settings.adapters_dir / "lorag-identity"
    if not identity.exists():
        sys.exit("train the demo adapter first: make finetune")
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        specs = make_adapters(model_dir, identity, Path(tmp))
        results = {}
        for kind in engines:
            print(f"running {kind} ...", flush=True)
            results[kind] = asyncio.run(bench_engine(kind, model_dir, specs, args.max_tokens, args.rounds))

    peer = results.get("naive") or next(iter(results.values()))
    print(f"\nOutput tokens/s, greedy, max_tokens={args.max_tokens}, {settings.base_model} fp32 (ratio vs naive peer)")
    print(f"{'workload':<17} {'conc':>4} " + " ".join(f"{k:>16}" for k in engines))
    for workload, concurrency in next(iter(results.values()))["rows"]:
        base = peer["rows"][(workload, concurrency)]
        cells = []
        for kind in engines:
            value = results[kind]["rows"][(workload, concurrency)]
            cells.append(f"{value:7.1f} ({value / base:4.2f}x)")
        print(f"{workload:<17} {concurrency:>4} " + " ".join(f"{c:>16}" for c in cells))
    for kind in engines:
        r = results[kind]
        mixed, base = (r["rows"][(w, CONCURRENCY[-1])] for w in ("4 mixed adapters", "base"))
        print(f"{kind}: 4 mixed adapters at {CONCURRENCY[-1]} concurrent: {mixed / base:.2f}x its base throughput")
        print(
            f"{kind}: adapter load -> first token {r['load_latency_s'] * 1000:.0f} ms; startup {r['startup_s']:.0f} s"
        )


if __name__ == "__main__":
    main()
