"""``lorag pairs``: preference data from AI feedback, chosen/rejected rows for ``method: dpo``.

It samples ``-k`` answers per prompt from ``--model`` at the gateway (started in process, or
``--base-url``: any OpenAI-compatible endpoint, :mod:`gateway.cli.reach`), has a judge model rank
them (``--judge-model``, default the sampled model itself; at ``--judge-base-url``, default the
same endpoint) and writes one row per prompt it could rank (:mod:`gateway.data.pairs`, the judge
in :mod:`gateway.compare.ranking`). The CLI runs as the user, so it reaches any URL the user
gives: the server's outbound allowlist is for the API. A bad prompts file, an unknown model or
judge, or an unreachable endpoint is one line on stderr and exit 1, before any answer is asked
for; a prompt that gives no pair is counted in the closing line. This module knows nothing about
how answers are ranked or rows built.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import fail
from gateway.cli.reach import api_errors, gateway_at


def pairs(
    prompts: Annotated[Path, typer.Argument(help="Prompts: .txt, one a line, or JSONL of {prompt} or {question}.")],
    out: Annotated[Path, typer.Option(help="JSONL to write: {prompt, chosen, rejected, reason, judge, samples} rows.")],
    model: Annotated[str, typer.Option(help="Model to sample the answers from (a base model, adapter or <m>@<kb>).")],
    samples: Annotated[int, typer.Option("--samples", "-k", help="Answers sampled per prompt.")] = 4,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the answers.")] = 0.8,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the sampling and of the order the judge sees.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Prompts in the works at once.")] = 4,
    judge_model: Annotated[str | None, typer.Option(help="Model that ranks the answers; default: --model.")] = None,
    prefer: Annotated[
        str | None,
        typer.Option(
            help='What makes an answer the best; the judge reads "the best (PREFER)". '
            'Default: "the most helpful, correct and honest".'
        ),
    ] = None,
    judge_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible API of the judge; default: the one sampled from.")
    ] = None,
    judge_api_key: Annotated[str | None, typer.Option(help="API key for --judge-base-url.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible API to sample from; default: lorag started in process.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --base-url.")] = None,
    engine: Annotated[
        str | None, typer.Option(help="In process only: auto, vllm or local; default: LORAG_ENGINE.")
    ] = None,
) -> None:
    """Preference pairs from AI feedback: sample k answers per prompt, let a judge pick the best and the worst."""
    from gateway.data.documents import write_jsonl
    from gateway.data.pairs import PairsConfig
    from gateway.data.questions import load_prompts

    try:
        asked = load_prompts(prompts)
        config = PairsConfig(model, samples, temperature, max_tokens, seed, concurrency)
        if prefer is not None and not prefer.strip():
            raise ValueError("--prefer must say what makes an answer the best")
    except ValueError as e:  # QuestionsError too
        fail(str(e))
    with gateway_at(base_url, api_key, engine) as (url, key):
        rows, report = _run(url, key, asked, config, judge_model or model, prefer, judge_base_url, judge_api_key)
    write_jsonl(rows, out)
    typer.echo(f"wrote {report.pairs} pairs to {out}: {report.summary()}")


def _run(
    url: str, key: str | None, prompts: list[str], config, judge_model: str, prefer: str | None, judge_url, judge_key
):
    import openai
    from openai import AsyncOpenAI

    from gateway.compare.judge import Judge
    from gateway.compare.ranking import Ranker
    from gateway.compare.runner import CompareError, validate_judge
    from gateway.data.pairs import build_pairs

    async def main():
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key=key or "none", max_retries=2, timeout=600)
        judge_client = client
        if judge_url:
            judge_client = AsyncOpenAI(base_url=judge_url, api_key=judge_key or "none", max_retries=2, timeout=600)
        try:
            try:
                await client.models.retrieve(config.model)
            except openai.NotFoundError:
                fail(f"unknown model '{config.model}' at {url}: GET {url}/v1/models lists the models it serves")
            await validate_judge(judge_client, judge_model, judge_url or url)
            ranker = Ranker(Judge(judge_client, judge_model), prefer=prefer)
            return await build_pairs(client, prompts, config, ranker, judge_model, bar=True)
        finally:
            await client.close()
            if judge_client is not client:
                await judge_client.close()

    try:
        with api_errors(url):
            return asyncio.run(main())
    except CompareError as e:
        fail(str(e))
