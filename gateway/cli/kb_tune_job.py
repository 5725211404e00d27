"""``lorag kb tune KB --job --base-url URL``: the same tuning, as a fine-tuning job of a running gateway.

A knowledge base that ``lorag serve`` holds open cannot be opened by a second process, so this
asks that gateway to tune it: a retriever job (``lorag.method: "retriever"``, see
:mod:`gateway.jobs.retriever`) on its base model, with the settings the command was given. It
prints the job's events as they come (the latest training step of each poll, the held-out figures,
the swap) until the job ends, and fails with the job's error if it did not succeed. Stopping the
command leaves the job running: cancel it with the job id it printed. This module knows nothing
about training.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from gateway.cli.common import fail
from gateway.cli.reach import api_errors
from gateway.jobs.protocol import FINISHED

POLL_S = 1.0


def run_job(base_url: str, api_key: str | None, lorag: dict[str, Any]) -> None:
    """Create the retriever job at the gateway ``base_url`` and print its events until it ends."""
    from openai import OpenAI

    url = base_url.rstrip("/").removesuffix("/v1")
    client = OpenAI(base_url=f"{url}/v1", api_key=api_key or "none", max_retries=2, timeout=60)
    with api_errors(url):
        base = next(m.id for m in client.models.list().data if not getattr(m, "parent", None))
        job = client.fine_tuning.jobs.create(model=base, training_file="", extra_body={"lorag": lorag})
        typer.echo(f"job {job.id} on {url} (cancel: POST /v1/fine_tuning/jobs/{job.id}/cancel)")
        seen: set[str] = set()
        while True:
            job = client.fine_tuning.jobs.retrieve(job.id)
            fresh = [e for e in reversed(client.fine_tuning.jobs.list_events(job.id, limit=1000).data)
                     if e.id not in seen]  # fmt: skip
            seen.update(e.id for e in fresh)
            steps = [e for e in fresh if e.type == "metrics" and "step" in (e.data or {})]
            for event in fresh:
                if event not in steps or event is steps[-1]:
                    typer.echo(event.message)
            if job.status in FINISHED:
                break
            time.sleep(POLL_S)
    if job.status != "succeeded":
        fail(f"job {job.id} {job.status}" + (f": {job.error.message}" if job.error else ""))
