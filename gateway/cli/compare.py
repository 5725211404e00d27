"""``lorag compare``: ask one question set of several arms, score the answers, write the report.

Without ``--base-url`` the command starts the gateway in process on a free loopback port and
talks to it over HTTP; with ``--base-url`` it uses a running gateway (:mod:`gateway.cli.reach`).
Either way it prints the per-arm table and where the
report is. ``--rescore REPORT.json`` asks nothing: it scores the answers of an earlier report
again with the current scoring and writes the four files anew (by default next to it). Input
the user can fix (a bad questions file, an unknown arm or judge model, an unreachable server)
is reported in one line on stderr with a non-zero exit. The heavy imports (openai, the app,
matplotlib) happen only when the command runs, so ``lorag --help`` stays fast. This module
knows nothing about scoring or report formats.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import fail
from gateway.cli.reach import api_errors, gateway_at
from gateway.settings import get_settings


def compare(
    questions: Annotated[
        Path | None, typer.Option(help="JSONL of {question, answer} rows, or Wiki-Newpages QA JSON. Required.")
    ] = None,
    arms: Annotated[
        str | None, typer.Option(help="Comma-separated models: base, adapter, <model>@<kb>. Required.")
    ] = None,
    judge: Annotated[str | None, typer.Option(help="Judge model for a 0/1 correctness verdict per answer.")] = None,
    judge_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible API of the judge; default: the gateway being compared.")
    ] = None,
    judge_api_key: Annotated[str | None, typer.Option(help="API key for --judge-base-url.")] = None,
    reward_model: Annotated[
        str | None,
        typer.Option(help="A reward model (method: reward) in the adapters folder, or its path: scores every answer."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder; default: <reports_dir>/<YYYYmmdd-HHMMSS> (--rescore: its folder)."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="A running gateway, e.g. http://127.0.0.1:8000; default: start one in process.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --base-url.")] = None,
    limit: Annotated[int | None, typer.Option(help="Ask a random sample of this many questions (seeded).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the bootstrap and permutation tests.")] = 0,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 64,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the arms.")] = 0.0,
    concurrency: Annotated[int, typer.Option(help="Chat requests in flight at once.")] = 4,
    system: Annotated[str | None, typer.Option(help="A system prompt sent before every question.")] = None,
    engine: Annotated[
        str | None, typer.Option(help="In process only: auto, vllm or local; default: LORAG_ENGINE.")
    ] = None,
    rescore: Annotated[
        Path | None,
        typer.Option(help="Instead of asking: score the answers of this report.json again; only --out applies."),
    ] = None,
) -> None:
    """Compare arms (base model, adapters, retrieval) on the same questions; write a scored report."""
    from gateway.compare.report import default_folder
    from gateway.compare.rewarding import reward_model_folder
    from gateway.compare.runner import CompareConfig, CompareError, parse_arms
    from gateway.data.questions import QuestionsError, load_questions, sample

    if rescore is not None:
        if questions is not None or arms is not None:
            fail("--rescore asks no questions: leave out --questions and --arms")
        folder = out or rescore.parent
        _print(_rescore(rescore, folder), folder)
        return
    if questions is None or arms is None:
        fail("give --questions and --arms (or --rescore REPORT.json)")
    try:
        asked = sample(load_questions(questions), limit, seed)
        config = CompareConfig(
            arms=parse_arms(arms), max_tokens=max_tokens, temperature=temperature, concurrency=concurrency,
            system=system, judge_model=judge, judge_base_url=judge_base_url, seed=seed, reward_model=reward_model,
        )  # fmt: skip
        if reward_model:
            reward_model_folder(reward_model, get_settings().adapters_dir)
    except (QuestionsError, CompareError) as e:
        fail(str(e))
    folder = out or default_folder(get_settings().reports_dir)
    with gateway_at(base_url, api_key, engine) as (url, key):
        report = _run(url, key, asked, config, judge_api_key, folder)
    _print(report, folder)


def _run(url: str, api_key: str | None, questions, config, judge_api_key: str | None, folder: Path) -> dict:
    from openai import AsyncOpenAI

    from gateway.compare.report import write_report
    from gateway.compare.rewarding import add_rewards, reward_model_folder
    from gateway.compare.runner import CompareError, run_compare

    async def main():
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key or "none", max_retries=2, timeout=600)
        judge_client = None
        if config.judge_base_url:
            judge_client = AsyncOpenAI(base_url=config.judge_base_url, api_key=judge_api_key or "none", max_retries=2)
        try:
            result = await run_compare(client, questions, config, judge_client=judge_client, bar=True)
            if config.reward_model:
                settings = get_settings()
                folder = reward_model_folder(config.reward_model, settings.adapters_dir)
                await add_rewards(result, folder, settings.cache_dir.expanduser())
            return result
        finally:
            await client.close()
            if judge_client is not None:
                await judge_client.close()

    try:
        with api_errors(url):
            result = asyncio.run(main())
    except CompareError as e:
        fail(str(e))
    return write_report(result, folder)


def _rescore(path: Path, folder: Path) -> dict:
    import json

    from gateway.compare.report import write_report
    from gateway.compare.runner import CompareError, CompareResult, rescore

    try:
        result = CompareResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except (ValueError, CompareError) as e:  # JSON, UTF-8 or report errors
        fail(f"{path}: {' '.join(str(e).split())}")
    return write_report(rescore(result), folder)


def _print(report: dict, folder: Path) -> None:
    from gateway.compare.report_tables import arm_table, p_text, text_table
    from gateway.compare.summary import LABELS

    typer.echo(text_table(*arm_table(report["summary"])))
    for test in (t for t in report["pairwise"] if t["significant"]):
        difference = test["difference"]["mean"]
        better, worse = (test["a"], test["b"]) if difference > 0 else (test["b"], test["a"])
        typer.echo(
            f"significant: {better} beats {worse} on {LABELS[test['metric']]} by {abs(difference):.3f} "
            f"({p_text(test['p_value'], named=True)})"
        )
    typer.echo(f"report: {folder / 'report.html'} (also report.md, report.json, chart.png)")
