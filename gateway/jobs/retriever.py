"""Retriever jobs: a job with ``lorag: {"method": "retriever", "knowledge_base": ...}`` runs ``lorag kb tune``.

The job tunes the knowledge base's embedder on its own documents and re-indexes it with the tuned
one (:func:`gateway.knowledge.tuning.tune`, the code ``lorag kb tune`` runs). Its settings are the
fields of :class:`rag.tuning.TuningSettings`, with the bounds declared there (:func:`parse` derives
the extension from that one declaration), plus ``dry_run``. ``training_file`` must be left empty
(``""``): the pairs come from the knowledge base itself. No adapter is served: ``fine_tuned_model``
stays null, and the events carry the held-out figures before and after and the swap.

Why an executor in the gateway rather than the runner's ``python -m tuner`` subprocess: rag owns
embedders (the tuner and peft have no part in it), and the knowledge base is held open by this
gateway (a writer lock), so a separate process could not re-index it; the swap must also go through
the gateway's :class:`~gateway.knowledge.service.Knowledge`, so that searches move to the new index
when it is complete. The training runs in a worker thread; the job shares the runner's training
slots, its task table (so :meth:`Runner.cancel` reaches it) and its events. Cancelling sets a flag
the run checks between its stages and after every training step: the run stops, its partial folder
is deleted, the knowledge base is as it was and nothing is registered. Once the re-indexing has begun
the run goes to its end (the old index serves until the new one is complete), and a cancel then
ends ``succeeded``. A job cannot be paused. After a restart an unfinished job starts again from the
beginning. This module knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Annotated, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from gateway.errors import LoragError, invalid
from gateway.jobs.ids import new_id
from gateway.jobs.judges import Judges
from gateway.jobs.protocol import Job, JobCreate, JobError, JobEvent, ResolvedHyperparameters
from gateway.jobs.runner import JUDGE_KEY, Runner
from gateway.jobs.store import JobStore
from gateway.knowledge.service import Knowledge
from gateway.knowledge.tuning import check_backend, query_writer, tune
from rag.errors import KnowledgeBaseNotFound, RagError
from rag.tuning import TuningResult, TuningSettings

log = logging.getLogger(__name__)
METHOD = "retriever"
FIGURES = ("dense_recall@10", "dense_ndcg@10", "hybrid_recall@10", "hybrid_ndcg@10")


def is_retriever(request: JobCreate) -> bool:
    return (request.lorag or {}).get("method") == METHOD


@cache
def extension() -> type[BaseModel]:
    """The ``lorag`` extension of a retriever job: TuningSettings' fields with their bounds, and the job's own."""
    hints = get_type_hints(TuningSettings, include_extras=True)
    settings = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(TuningSettings) if f.name != "extra"}
    return create_model(
        "RetrieverExtension", __config__=ConfigDict(extra="forbid"), method=(Literal["retriever"], ...),
        knowledge_base=(Annotated[str, Field(min_length=1, max_length=256)], ...), dry_run=(bool, False), **settings,
    )  # fmt: skip


def parse(given: dict) -> tuple[str, TuningSettings, bool]:
    """(knowledge base, settings, dry run) from a job's ``lorag`` extension; 400 ``lorag.<field>`` naming a bad one."""
    try:
        fields = extension().model_validate(given)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"][:1]) or "method"
        if first["type"] == "extra_forbidden":
            raise invalid(f"lorag.{name}", f"lorag.{name} is not a setting of a retriever job: "
                                           "docs/fine-tuning-api.md lists those it takes") from None  # fmt: skip
        raise invalid(f"lorag.{name}", f"lorag.{name}: {first['msg']}") from None
    values = fields.model_dump(exclude_unset=True, exclude={"method", "knowledge_base", "dry_run"})
    try:
        return fields.knowledge_base, TuningSettings(**values), fields.dry_run
    except ValueError as e:
        raise invalid("lorag.sources", f"lorag.sources: {e}") from None


class RetrieverJobs:
    def __init__(self, store: JobStore, runner: Runner, knowledge: Knowledge, judges: Judges):
        self.store, self.runner, self.knowledge, self.judges = store, runner, knowledge, judges

    async def create(self, request: JobCreate, job_id: str, base: str, may_use: Callable[[str], bool]) -> Job:
        """The checked job, stored (``queued``) and started; ``may_use``: whether the caller may use a knowledge
        base (one it may not is answered as one that does not exist)."""
        for param in ("training_file", "validation_file", "method", "hyperparameters", "suffix", "integrations"):
            if getattr(request, param):
                raise invalid(param, f"a retriever job trains on the knowledge base's own documents and takes its "
                                     f"settings in lorag: leave {param} out (training_file: '')")  # fmt: skip
        name, settings, dry_run = parse(request.lorag)
        if request.seed is not None and "seed" not in request.lorag:
            settings = dataclasses.replace(settings, seed=request.seed)
        if "generated" in settings.sources and not self.judges.url:
            reason = "the 'generated' source asks the base model through this gateway's own URL: set LORAG_SELF_URL"
            raise invalid("lorag.sources", f"{reason} (lorag serve sets it)")
        try:
            if not may_use(name):
                raise KnowledgeBaseNotFound(name)
            check_backend(await self.knowledge.get(name))
        except KnowledgeBaseNotFound:
            raise invalid("lorag.knowledge_base", f"no knowledge base '{name}'") from None
        job = Job(
            id=job_id, created_at=int(time.time()), model=base, seed=settings.seed, status="queued",
            training_file="", metadata=request.metadata, lorag=request.lorag,
            hyperparameters=ResolvedHyperparameters(batch_size=settings.batch_size, learning_rate_multiplier="auto",
                                                    n_epochs=int(settings.epochs) if settings.epochs.is_integer()
                                                    else "auto"),
            method={"type": METHOD, METHOD: {"knowledge_base": name, "dry_run": dry_run,
                                              "settings": dataclasses.asdict(settings)}},
        )  # fmt: skip
        # "name" is what Runner.cancel discards from the adapters folder: the job id, which no adapter is called
        self.store.add_job(job, {"method": METHOD, "name": job_id})
        return job

    def start(self, job: Job) -> None:
        self.runner.tasks[job.id] = asyncio.create_task(self.drive(job.id), name=f"job {job.id}")
        self.runner.tasks[job.id].add_done_callback(lambda _: self.runner.tasks.pop(job.id, None))

    async def recover(self) -> None:
        """Start the retriever jobs a stopped gateway left unfinished again, from the beginning."""
        for job in self.store.unfinished():
            if job.method.get("type") == METHOD:
                self.runner.event(job.id, "The gateway restarted: the tuning starts again from the beginning "
                                          "(the knowledge base was left as it was)", "warn")  # fmt: skip
                self.start(self.runner.update(job.id, status="queued"))

    async def drive(self, job_id: str) -> None:
        """Tune, measure, swap; cancelled before the swap, the knowledge base is left as it was."""
        job = self.store.job(job_id)
        spec = job.method[METHOD]
        name, dry_run, settings = spec["knowledge_base"], spec["dry_run"], TuningSettings(**spec["settings"])
        stopping, swapping, work = threading.Event(), threading.Event(), None
        try:
            async with self.runner.slots:
                self.runner.update(job_id, status="running")
                self.runner.event(job_id, f"Tuning the embedder of knowledge base '{name}' on its documents"
                                          + (" (dry run)" if dry_run else ""))  # fmt: skip
                work = asyncio.ensure_future(self._tune(job_id, name, settings, dry_run, stopping, swapping))
                result = await asyncio.shield(work)
        except asyncio.CancelledError:
            if not swapping.is_set():
                stopping.set()
            outcome = (await asyncio.gather(work, return_exceptions=True))[0] if work else None
            swapped = swapping.is_set() and isinstance(outcome, TuningResult)
            if self.runner.closing and not swapped:
                raise  # the job stays unfinished: it starts again with the gateway
            if swapped:
                self.runner.event(job_id, "Stopping came after the re-indexing had begun: it was completed")
                self._done(job_id, name, outcome, dry_run)
            else:
                self.runner.finish(job_id, "cancelled")
                self.runner.event(job_id, f"Knowledge base '{name}' is unchanged")
            return
        except (LoragError, RagError) as e:
            self.runner.finish(job_id, "failed", JobError(code="tuning_failed", message=str(e)))
            return
        except Exception as e:  # a bug or the machine: the job fails, the gateway goes on
            log.exception("retriever job %s failed", job_id)
            self.runner.finish(job_id, "failed", JobError(code="internal_error", message=f"{type(e).__name__}: {e}"))
            return
        finally:
            self.runner.cancelling.discard(job_id)
        self._done(job_id, name, result, dry_run)

    async def _tune(self, job_id, name, settings, dry_run, stopping, swapping) -> TuningResult:
        write_query, key_file = None, self.runner.work_dir(job_id) / JUDGE_KEY
        if "generated" in settings.sources:  # the base model, through this gateway, with a key for this run only
            from openai import OpenAI

            key_file.parent.mkdir(parents=True, exist_ok=True)
            self.judges.issue(job_id, self.store.owner(job_id) or "local", key_file)
            client = OpenAI(base_url=f"{self.judges.url.rstrip('/')}/v1", api_key=key_file.read_text(), timeout=600)
            write_query = query_writer(client, self.store.job(job_id).model)

        def on_log(step: int, total: int, loss: float) -> None:
            self.store.add_event(job_id, JobEvent(
                id=new_id("ftevent"), created_at=int(time.time()), level="info", type="metrics",
                message=f"Step {step}/{total}: train_loss={loss:.4g}",
                data={"step": step, "total_steps": total, "train_loss": loss},
            ))  # fmt: skip

        def on_swap(result: TuningResult) -> None:
            swapping.set()
            self._figures(job_id, result)
            self.runner.event(job_id, f"Re-indexing knowledge base '{name}' with the tuned embedder: searches are "
                                      "answered by the old index until the new one is complete")  # fmt: skip

        try:
            return await tune(self.knowledge, name, settings, write_query=write_query, dry_run=dry_run,
                              stop=stopping.is_set, on_log=on_log, on_swap=on_swap)  # fmt: skip
        finally:
            self.judges.revoke(job_id, key_file)

    def _figures(self, job_id: str, result: TuningResult) -> None:
        before, after = result.manifest["held_out_before"], result.manifest["held_out_after"]
        shown = ", ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in FIGURES if k in before and k in after)
        pairs = result.manifest["pairs"]
        self.store.add_event(job_id, JobEvent(
            id=new_id("ftevent"), created_at=int(time.time()), level="info", type="metrics",
            message=f"Held-out pairs ({pairs['held_out']}), before -> after: {shown}",
            data={"before": before, "after": after, "pairs": pairs, "seconds": result.manifest["seconds"]},
        ))  # fmt: skip

    def _done(self, job_id: str, name: str, result: TuningResult, dry_run: bool) -> None:
        if dry_run:
            self._figures(job_id, result)
            self.runner.event(job_id, f"Dry run: knowledge base '{name}' is unchanged")
        else:
            self.runner.event(job_id, f"Knowledge base '{name}' now answers with the tuned embedder "
                                      f"{result.model_path}")  # fmt: skip
        self.runner.finish(job_id, "succeeded", fine_tuned_model=None)
