"""``lorag kb tune``: tune a knowledge base's embedder on its own documents, then re-index it.

Pairs come from the knowledge base alone (``--sources``: ``ict``, a sentence against the rest of
its chunk; ``headings``, a heading against its section; ``generated``, a question that
``--generator`` writes for each chunk through the gateway, started in process or at
``--base-url``, see :mod:`gateway.cli.reach`). The run prints the pair counts and the held-out
figures before and after (recall@1, recall@10, nDCG@10, dense and hybrid), then re-indexes the
knowledge base with the tuned embedder (:mod:`gateway.knowledge.tuning`); ``--dry-run`` stops
after the figures. Its settings are checked as a retriever fine-tuning job's are
(:func:`gateway.jobs.retriever.parse`, the bounds :class:`rag.tuning.TuningSettings` declares). Like
the other ``lorag kb`` commands it opens the folder directly: tune a knowledge base that ``lorag
serve`` holds open through a fine-tuning job (``lorag.method: "retriever"``) instead: ``--job
--base-url URL`` creates one and follows it (:mod:`gateway.cli.kb_tune_job`). This module
knows nothing about training.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import nullcontext
from typing import Annotated

import typer

from gateway.cli.common import fail
from gateway.cli.kb_tune_job import run_job
from gateway.cli.reach import api_errors, gateway_at
from gateway.errors import LoragError, as_lorag_error
from gateway.jobs.retriever import parse
from gateway.knowledge.service import Knowledge
from gateway.knowledge.tuning import query_writer, tune
from gateway.settings import get_settings
from rag.errors import RagError
from rag.tuning import CannotTune, TuningSettings

METRICS = (
    "dense_recall@1",
    "dense_recall@10",
    "dense_ndcg@10",
    "hybrid_recall@1",
    "hybrid_recall@10",
    "hybrid_ndcg@10",
)


def tune_command(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    sources: Annotated[
        str, typer.Option(help="Pair sources, comma-separated: ict, headings, generated.")
    ] = "ict,headings",
    generator: Annotated[
        str | None, typer.Option(help="Model that writes the 'generated' queries (default: the gateway's base model).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Gateway (or OpenAI-compatible server) for --generator; the gateway of --job.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --base-url.")] = None,
    max_pairs: Annotated[
        int, typer.Option(help="Training pairs at most (a bound on time).")
    ] = TuningSettings.max_pairs,
    epochs: Annotated[float, typer.Option(help="Passes over the pairs.")] = TuningSettings.epochs,
    batch_size: Annotated[int, typer.Option(help="Pairs per step (in-batch negatives).")] = TuningSettings.batch_size,
    learning_rate: Annotated[float, typer.Option()] = TuningSettings.learning_rate,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report the figures; do not re-index.")] = False,
    job: Annotated[
        bool, typer.Option("--job", help="Run it as a fine-tuning job of the gateway at --base-url, which holds it.")
    ] = False,
) -> None:
    """Tune the embedder on pairs made from the knowledge base, measure it on held-out pairs, re-index with it."""
    given = {"sources": [s.strip() for s in sources.split(",") if s.strip()], "max_pairs": max_pairs,
             "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}  # fmt: skip
    try:  # checked as a retriever job's settings are: the bounds TuningSettings declares
        _, settings, _ = parse({"method": "retriever", "knowledge_base": name} | given)
    except LoragError as e:
        field = (e.param or "").removeprefix("lorag.")
        fail(f"--{field.replace('_', '-')}: {e.message.removeprefix(f'{e.param}: ')}")
    if job:
        if not base_url or generator:
            fail("--job needs --base-url, the gateway that holds the knowledge base (its base model writes queries)")
        return run_job(base_url, api_key, {"method": "retriever", "knowledge_base": name, "dry_run": dry_run} | given)
    generating = "generated" in settings.sources
    with gateway_at(base_url, api_key, None) if generating else nullcontext((None, None)) as (url, key):
        write_query = _writer(url, key, generator) if generating else None
        try:
            with api_errors(url) if generating else nullcontext():
                result = asyncio.run(
                    tune(Knowledge.from_settings(get_settings()), name, settings, write_query=write_query,
                         dry_run=dry_run, progress=True)
                )  # fmt: skip
        except CannotTune as e:
            fail(str(e))
        except (LoragError, RagError) as e:
            fail(as_lorag_error(e).message)
    manifest = result.manifest
    typer.echo(f"pairs: {json.dumps(manifest['pairs'])}")
    typer.echo(f"held-out pairs {'metric':<18}{'before':>9}{'after':>9}")
    for metric in METRICS:
        before, after = manifest["held_out_before"][metric], manifest["held_out_after"][metric]
        typer.echo(f"{'':<15}{metric:<18}{before:>9.4f}{after:>9.4f}")
    typer.echo(f"trained in {manifest['seconds']:.0f} s")
    if dry_run:
        typer.echo("dry run: the knowledge base is unchanged")
    else:
        typer.echo(f"{name} re-indexed with {result.model_path}")


def _writer(url: str, key: str | None, generator: str | None):
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=key or "none", max_retries=2, timeout=600)
    with api_errors(url):
        model = generator or client.models.list().data[0].id
        client.models.retrieve(model)
    return query_writer(client, model)
