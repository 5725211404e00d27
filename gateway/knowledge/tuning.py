"""Tune a knowledge base's embedder on its own documents, then re-index it with the tuned one (``lorag kb tune``).

The training itself is rag's (:mod:`rag.tuning`: rag owns the embedder, and sentence-transformers
is already its dependency, so the gateway needs neither the tuner nor peft). This module runs
it in a worker thread, keeps each run in the knowledge base's folder (``tuned/<run>/``: the model,
``tuning.json``, ``loss.png``; a run is written under ``tuned/.<run>.partial`` and renamed only
once complete), and then swaps the embedder through :meth:`Knowledge.update`, the same
re-embedding path as ``PATCH /v1/knowledge_bases/{name}``: every chunk is embedded by the tuned
model before the new index replaces the old, so searches are answered by the old index until
then, and a run stopped at any point before the swap leaves the knowledge base as it was. A dry
run only reports the figures and deletes its model; a run that fails or is stopped (``stop``) deletes
its partial folder. Only the folder backend can be tuned: on Milvus (``LORAG_MILVUS_URI``) the tuned
embedder would be a folder on one machine that every gateway sharing the knowledge base needs
(:func:`check_backend`, 400 ``unsupported_backend``). :func:`query_writer` asks a served model for one
question per chunk (the ``generated`` pair source). This module knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable

from gateway.errors import LoragError
from gateway.knowledge.service import Knowledge
from rag.backend import KnowledgeBaseLike
from rag.store import KnowledgeBase
from rag.tuning import OnLog, Stop, TuningResult, TuningSettings, tune_knowledge_base

RUNS = "tuned"
QUERY_PROMPT = (
    "Write one short question that a user might ask a search engine and that this passage answers. "
    "Write it in the passage's language. Reply with the question only.\n\nPassage:\n{passage}"
)


async def tune(
    knowledge: Knowledge,
    name: str,
    settings: TuningSettings,
    *,
    write_query: Callable[[str], str | None] | None = None,
    dry_run: bool = False,
    progress: bool = False,
    stop: Stop | None = None,
    on_log: OnLog | None = None,
    on_swap: Callable[[TuningResult], None] | None = None,
) -> TuningResult:
    """Tune the embedder of knowledge base `name`; unless `dry_run`, re-index it with the tuned model.

    `stop` and `on_log` as :func:`rag.tuning.tune_knowledge_base` takes them; `on_swap` is told the figures just
    before the re-indexing starts (from then on, the run goes to its end)."""
    kb = check_backend(await knowledge.get(name))
    run = time.strftime("%Y%m%d-%H%M%S")
    partial = kb.path / RUNS / f".{run}.partial"
    try:
        result = await asyncio.to_thread(
            tune_knowledge_base, kb, partial, settings, write_query=write_query, progress=progress, stop=stop,
            on_log=on_log,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if dry_run:
        shutil.rmtree(partial, ignore_errors=True)
        return result
    if on_swap:
        on_swap(result)
    final = kb.path / RUNS / run
    partial.rename(final)
    result = TuningResult(final / result.model_path.name, result.manifest)
    await knowledge.update(name, str(result.model_path), progress=progress)
    return result


def check_backend(kb: KnowledgeBaseLike) -> KnowledgeBase:
    """The knowledge base if its backend can be tuned (the folder one); 400 ``unsupported_backend`` on Milvus."""
    if not isinstance(kb, KnowledgeBase):
        raise LoragError(
            400, f"knowledge base '{kb.manifest.name}' is in Milvus: a tuned embedder is a folder that every gateway "
            "sharing it would need, so only knowledge bases of the folder backend (LORAG_KB_DIR) can be tuned",
            param="knowledge_base", code="unsupported_backend",
        )  # fmt: skip
    return kb


def query_writer(client, model: str, max_tokens: int = 64) -> Callable[[str], str | None]:
    """A function asking `model` through the OpenAI client `client` for one question about a passage (greedy)."""

    def write(passage: str) -> str | None:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": QUERY_PROMPT.format(passage=passage)}],
            max_tokens=max_tokens,
            temperature=0,
        )
        text = (reply.choices[0].message.content or "").strip().splitlines()
        return text[0].strip() if text else None

    return write
