"""Running fine-tuning jobs: check, queue, train in a subprocess, serve the adapter; cancel and recover.

Each job is one asyncio task (:meth:`Runner.drive`): ``validating_files`` runs ``python -m tuner
check`` on its recipe and data; ``queued`` waits for one of ``max_jobs`` training slots (first
come, first served); ``running`` is ``python -m tuner train`` in a process group of its own,
whose progress file is read into events and checkpoints every ``poll_s``; on success the
adapter, written into the adapters folder, is handed to ``serve`` (the catalog refresh that
hot-loads it) before the job says ``succeeded``. A run whose model graders ask this gateway gets a key of its own
for as long as it runs (:mod:`gateway.jobs.judges`). Cancelling kills the process group and removes
anything it wrote to the adapters folder, so a cancelled job registers nothing. Pausing kills it
too but keeps its checkpoints; resuming trains on from the last one saved in full. After a restart
(:meth:`Runner.recover`), a job that was running resumes from its last checkpoint (or from the
start when it had none): its training process died with the gateway (or, off Linux, is killed
then), and its progress file is read on from where the store had it, so no event is lost or told
twice. This module knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from gateway.jobs.ids import new_id
from gateway.jobs.judges import Judges
from gateway.jobs.progress import Progress
from gateway.jobs.protocol import Job, JobError, JobEvent, ResolvedHyperparameters
from gateway.jobs.store import JobStore
from gateway.jobs.tuner_process import CheckFailed, check, die_with_parent, last_error, train_command

log = logging.getLogger(__name__)
JUDGE_KEY = "judge.key"
"""The file in a job's work folder that holds its run's key to this gateway's models (model graders' judge)."""
MAX_CHECKPOINTS = 10
"""Checkpoints a job saves at most: one per epoch, or one every few epochs for a long job."""
Serve = Callable[[str], Awaitable[str | None]]
"""Hot-load the adapter of this name; None when it is served, else why it was refused."""


class Runner:
    def __init__(
        self, store: JobStore, folder: Path, adapters_dir: Path, cache_dir: Path,
        base_model_dir: Callable[[], Path], serve: Serve, max_jobs: int = 1, poll_s: float = 0.5,
        judges: Judges | None = None,
    ):  # fmt: skip
        self.store, self.folder, self.adapters_dir, self.cache_dir = store, folder, adapters_dir, cache_dir
        self.judges = judges or Judges()
        self.base_model_dir, self.serve, self.poll_s = base_model_dir, serve, poll_s
        self.slots = asyncio.Semaphore(max_jobs)
        self.tasks: dict[str, asyncio.Task] = {}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.cancelling: set[str] = set()
        self.pausing: set[str] = set()
        self.closing = False

    def work_dir(self, job_id: str) -> Path:
        return self.folder / job_id

    def start(self, job: Job, resume: bool = False) -> None:
        self.tasks[job.id] = asyncio.create_task(self.drive(job.id, resume), name=f"job {job.id}")
        self.tasks[job.id].add_done_callback(lambda _: self.tasks.pop(job.id, None))

    def event(self, job_id: str, message: str, level: str = "info") -> None:
        self.store.add_event(job_id, JobEvent(id=new_id("ftevent"), created_at=int(time.time()), level=level,
                                              message=message))  # fmt: skip

    def update(self, job_id: str, pid: int | None = None, **fields) -> Job:
        job = self.store.job(job_id).model_copy(update=fields)
        self.store.save_job(job, pid)
        return job

    def finish(self, job_id: str, status: str, error: JobError | None = None, **fields) -> Job:
        job = self.update(job_id, status=status, error=error, finished_at=int(time.time()), estimated_finish=None,
                          **fields)  # fmt: skip
        if error:
            self.event(job_id, f"Job failed: {error.message}", "error")
        else:
            self.event(job_id, {"succeeded": "The job has successfully completed",
                                "cancelled": "The job was cancelled"}[status])  # fmt: skip
        log.info("fine-tuning job %s %s", job_id, status)
        return job

    async def drive(self, job_id: str, resume: bool = False) -> None:
        """Take the job from where its status says to a finished status."""
        try:
            recipe, _ = self.store.recipe(job_id)
            work = self.work_dir(job_id)
            if self.store.job(job_id).status == "validating_files":
                if not await self._validate(job_id, recipe, work):
                    return
            async with self.slots:
                await self._train(job_id, recipe, work, resume)
        except asyncio.CancelledError:
            if job_id in self.cancelling:
                self._discard(job_id, recipe["name"])
                self.finish(job_id, "cancelled")
            raise
        except Exception as e:  # a bug or the machine (disk full, ...): the job fails, the gateway goes on
            log.exception("fine-tuning job %s failed", job_id)
            self.finish(job_id, "failed", JobError(code="internal_error", message=f"{type(e).__name__}: {e}"))
        finally:
            self.cancelling.discard(job_id)
            self.pausing.discard(job_id)

    async def _validate(self, job_id: str, recipe: dict, work: Path) -> bool:
        work.mkdir(parents=True, exist_ok=True)
        path = work / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        try:
            rows = (await check("--recipe", str(path)))["rows"]
        except CheckFailed as e:
            param = "training_file" if recipe["dataset"] in str(e) else None
            self.finish(job_id, "failed", JobError(code="invalid_training_file", message=str(e), param=param))
            return False
        if "save_steps" not in recipe:  # at the end of an epoch, as OpenAI saves; ten at most
            recipe.setdefault("max_checkpoints", MAX_CHECKPOINTS)
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        self.update(job_id, status="queued")
        self.event(job_id, f"Files validated: {rows['train']} training rows, {rows['eval']} validation rows")
        return True

    async def _train(self, job_id: str, recipe: dict, work: Path, resume: bool) -> None:
        name = recipe["name"]
        runs, events = work / "runs", work / "events.jsonl"
        progress = Progress(events, job_id, name, self.store.progress(job_id))
        if (self.adapters_dir / name / "lorag.json").exists():  # trained before a restart, not yet served
            self._take(job_id, progress, None)
            await self._serve(job_id, name)
            return
        self.update(job_id, status="running")
        self.event(job_id, "Fine-tuning job started")
        model_dir = await asyncio.to_thread(self.base_model_dir)
        overrides = [f"events_file={events}"]
        if "judge_api_key_file" in recipe:  # a key for this run only, and the gateway's URL as it is now
            self.judges.issue(job_id, self.store.owner(job_id) or "local", work / JUDGE_KEY)
            overrides += [f"judge_base_url={self.judges.url.rstrip('/')}/v1"] if self.judges.url else []
        if resume and self._resume_step(runs / name):
            overrides.append("resume_from_checkpoint=true")
        command = train_command(work / "recipe.yaml", model_dir, self.adapters_dir, runs, self.cache_dir, overrides,
                                int(recipe.get("num_processes", 1)))  # fmt: skip
        with (work / "tuner.log").open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.processes[job_id] = process
        self.update(job_id, pid=process.pid)
        try:
            code = await self._follow(job_id, process, progress)
        finally:
            self.processes.pop(job_id, None)
            self.judges.revoke(job_id, work / JUDGE_KEY)
        if self.closing:
            return  # the gateway is stopping: the job stays running and resumes at the next start
        if job_id in self.cancelling:
            self._discard(job_id, name)
            self.finish(job_id, "cancelled")
        elif job_id in self.pausing:
            step = self._resume_step(runs / name)
            self.update(job_id, status="paused", estimated_finish=None)
            self.event(job_id, f"The job was paused: resuming continues from step {step}" if step else
                               "The job was paused before its first checkpoint: resuming starts it again")  # fmt: skip
        elif code == 0 and (self.adapters_dir / name).exists():
            await self._serve(job_id, name)
        else:
            message = last_error((work / "tuner.log").read_text(errors="replace")[-4000:])
            self.finish(job_id, "failed", JobError(code="training_failed", message=message))

    async def _follow(self, job_id: str, process, progress: Progress) -> int:
        """Read the progress file into the store until the process exits; its exit code."""
        waiting = asyncio.ensure_future(process.wait())
        while True:
            await asyncio.wait([waiting], timeout=self.poll_s)
            code = waiting.result() if waiting.done() else None
            self._take(job_id, progress, process.pid)
            if code is not None:
                return code

    def _take(self, job_id: str, progress: Progress, pid: int | None) -> None:
        """Store what is new in the progress file, and how far it was read (a restart reads on from there)."""
        found = progress.read()
        for event in found.events:
            self.store.add_event(job_id, event)
        for checkpoint, path in found.checkpoints:
            self.store.add_checkpoint(checkpoint, path)
        if found.checkpoints:
            self.store.forget_removed_checkpoints(job_id)
        changes = {"estimated_finish": found.estimated_finish} if found.estimated_finish else {}
        if found.trained_tokens is not None:
            changes["trained_tokens"] = found.trained_tokens
        if found.hyperparameters:
            job = self.store.job(job_id)
            resolved = ResolvedHyperparameters(**job.hyperparameters.model_dump() | found.hyperparameters)
            kind = job.method["type"]
            method = job.method | {kind: job.method.get(kind, {}) | {"hyperparameters": resolved.model_dump(
                exclude_none=True)}}  # fmt: skip
            changes |= {"hyperparameters": resolved, "method": method}
        if changes:
            self.update(job_id, pid=pid, **changes)
        self.store.save_progress(job_id, progress.offset)

    async def _serve(self, job_id: str, name: str) -> None:
        refused = await self.serve(name)
        if refused:
            error = JobError(code="adapter_refused", message=f"the trained adapter {name} is not served: {refused}")
            self.finish(job_id, "failed", error, fine_tuned_model=None)
        else:
            self.finish(job_id, "succeeded", fine_tuned_model=name)

    async def cancel(self, job_id: str, wait_s: float = 30.0) -> None:
        """Stop the job wherever it is; it ends ``cancelled`` with nothing registered."""
        process, task = self.processes.get(job_id), self.tasks.get(job_id)
        if task is None:  # paused, or not started yet
            self._discard(job_id, self.store.recipe(job_id)[0]["name"])
            self.finish(job_id, "cancelled")
            return
        self.cancelling.add(job_id)
        if process is not None:
            await stop_group(process.pid, process.wait)
        else:
            task.cancel()
        await asyncio.wait([task], timeout=wait_s)

    async def pause(self, job_id: str, wait_s: float = 30.0) -> None:
        """Stop a running job's training process; its checkpoints stay for :meth:`resume`."""
        process, task = self.processes.get(job_id), self.tasks.get(job_id)
        self.pausing.add(job_id)
        await stop_group(process.pid, process.wait)
        await asyncio.wait([task], timeout=wait_s)

    def resume(self, job_id: str) -> None:
        """Train a paused job again, from its last checkpoint saved in full."""
        self.event(job_id, "The job was resumed")
        self.start(self.update(job_id, status="queued"), resume=True)

    @staticmethod
    def _resume_step(run: Path) -> int | None:
        """The step of the last checkpoint saved in full (``trainer_state.json`` is written last)."""
        steps = [int(p.parent.name.rpartition("-")[2]) for p in run.glob("checkpoint-*/trainer_state.json")]
        return max(steps, default=None)

    def _discard(self, job_id: str, name: str) -> None:
        """Remove what a cancelled job wrote: an adapter published in the last moment, and its checkpoints."""
        shutil.rmtree(self.adapters_dir / name, ignore_errors=True)
        shutil.rmtree(self.work_dir(job_id) / "runs", ignore_errors=True)

    async def recover(self) -> None:
        """Start every unfinished job again after a restart; a running one resumes from its last checkpoint."""
        for job in self.store.unfinished():
            if job.status == "paused" or job.method.get("type") == "retriever":
                continue  # until someone resumes it; a retriever job is gateway.jobs.retriever's
            resume = job.status == "running"
            if resume:
                _, pid = self.store.recipe(job.id)
                kill_orphan(pid, job.id)
                self.event(job.id, "The gateway restarted during training: the job resumes from its last "
                                   "checkpoint, or from the start if it had none", "warn")  # fmt: skip
                self.update(job.id, status="queued")
            self.start(job, resume)

    async def close(self) -> None:
        """Stop the training processes (their jobs resume at the next start) and the tasks."""
        self.closing = True
        for process in list(self.processes.values()):
            await stop_group(process.pid, process.wait)
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def stop_group(pid: int, wait: Callable[[], Awaitable[int]], grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL it if it is still there after ``grace_s``."""
    for sig, patience in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(wait(), patience)
            return
        except TimeoutError:
            continue


def kill_orphan(pid: int | None, job_id: str) -> None:
    """Kill the training process group a killed gateway left behind, if ``pid`` is still that job's process."""
    if pid is None:
        return
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return
    if job_id in command:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
