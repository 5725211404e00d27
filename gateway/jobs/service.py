"""OpenAI's files and fine-tuning jobs as a service: what the routes of ``/v1/files`` and ``/v1/fine_tuning`` call.

Files are stored under ``<jobs folder>/files``: a ``fine-tune`` file once ``python -m tuner check``
has read every row (a bad row is a 400 naming its line; nothing partial is kept); an
``assistants`` or ``user_data`` file (for vector stores) once a knowledge-base loader has read it
within the knowledge bases' size and content limits (a file no loader reads is a 400 naming why).
A job is accepted after its request is checked here (the model is the served base model, the files exist) and is then
driven by :class:`~gateway.jobs.runner.Runner`; its state is in ``<jobs folder>/jobs.sqlite``. A retriever job
(``lorag.method: "retriever"``) tunes a knowledge base's embedder instead (:mod:`gateway.jobs.retriever`).
Every file and job belongs to the key that made it: another key's calls answer 404, as if it did not
exist, and an admin key reaches all; a key's files stay within a storage quota. The database is
opened on first use, so an app that never trains writes nothing. This module
knows nothing about HTTP beyond raising :class:`~gateway.errors.LoragError`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from gateway.errors import LoragError, invalid, too_large
from gateway.jobs.ids import new_id
from gateway.jobs.judges import Judges
from gateway.jobs.protocol import FINISHED, Checkpoint, FileDeleted, FileObject, Job, JobCreate, JobEvent, Page
from gateway.jobs.recipes import fine_tuned_name, job_method, recipe_for, resolve
from gateway.jobs.retriever import METHOD, RetrieverJobs, is_retriever
from gateway.jobs.runner import JUDGE_KEY, Runner, Serve
from gateway.jobs.store import JobStore
from gateway.jobs.tuner_process import CheckFailed, check
from gateway.knowledge.service import Knowledge
from rag.errors import DocumentTooLarge, LoaderError
from rag.loaders import DEFAULT_LIMITS, load_document
from rag.office_files import Limits

PURPOSE = "fine-tune"
DOCUMENT_PURPOSES = ("assistants", "user_data")
"""Purposes of files that knowledge bases read (vector stores)."""


Caller = str | None
"""Whose files and jobs a call may reach: a key's name (what that key made), or None for an admin key (all)."""
OPEN = "local"
"""The owner of what a server without keys stores."""


class FineTuning:
    def __init__(
        self, folder: Path, adapters_dir: Path, cache_dir: Path, base_model: Callable[[], str],
        base_model_dir: Callable[[], Path], serve: Serve, max_file_bytes: int, max_jobs: int = 1,
        quota_bytes: int = 0, allow_python_graders: bool = False, judges: Judges | None = None,
        knowledge: Knowledge | None = None,
    ):  # fmt: skip
        """``quota_bytes``: the most one key may keep stored in files (0: no limit); ``allow_python_graders``:
        whether a reinforcement job's grader may be python code; ``judges``: how its model graders reach a judge;
        ``knowledge``: the knowledge bases retriever jobs tune (none: no retriever jobs)."""
        self.knowledge = knowledge
        self.allow_python_graders, self.judges = allow_python_graders, judges or Judges()
        # absolute, since each job's training process works in the job's own folder
        self.folder = Path(folder).expanduser().resolve()
        self.files_dir = self.folder / "files"
        self.adapters_dir, self.cache_dir = (
            Path(adapters_dir).expanduser().resolve(),
            Path(cache_dir).expanduser().resolve(),
        )
        self.base_model, self.base_model_dir, self.serve = base_model, base_model_dir, serve
        self.max_file_bytes, self.max_jobs, self.quota_bytes = max_file_bytes, max_jobs, quota_bytes

    @cached_property
    def store(self) -> JobStore:
        return JobStore(self.folder / "jobs.sqlite")

    @cached_property
    def runner(self) -> Runner:
        return Runner(self.store, self.folder, self.adapters_dir, self.cache_dir, self.base_model_dir, self.serve,
                      self.max_jobs, judges=self.judges)  # fmt: skip

    @cached_property
    def retriever(self) -> RetrieverJobs:
        return RetrieverJobs(self.store, self.runner, self.knowledge, self.judges)

    async def start(self) -> None:
        """Remove the uploads a killed gateway left half-staged, and resume the jobs it left unfinished (nothing to
        do where no job was ever created)."""
        for staged in self.files_dir.glob(".upload-*"):
            shutil.rmtree(staged) if staged.is_dir() else staged.unlink()
        if (self.folder / "jobs.sqlite").exists():
            await self.runner.recover()
            await self.retriever.recover()

    async def close(self) -> None:
        if "runner" in self.__dict__:
            await self.runner.close()

    # files

    async def upload(
        self, filename: str, data: bytes, purpose: str, limits: Limits = DEFAULT_LIMITS, max_document_bytes: int = 0,
        owner: str = OPEN,
    ) -> FileObject:  # fmt: skip
        """Store a file of ``purpose`` for the key ``owner``, within its quota; a document (``DOCUMENT_PURPOSES``)
        is read within ``limits`` and ``max_document_bytes`` (those of knowledge-base uploads), training data is
        checked by the tuner."""
        filename = _checked_filename(filename)
        used = self.store.stored_bytes(owner)
        if self.quota_bytes and used + len(data) > self.quota_bytes:
            raise LoragError(
                413, f"storing '{filename}' ({len(data)} bytes) would take this key's files past its quota of "
                f"{self.quota_bytes / 2**20:g} MiB ({used} bytes stored): delete files it no longer needs",
                param="file", code="storage_quota_exceeded",
            )  # fmt: skip
        if purpose in DOCUMENT_PURPOSES:
            file = await self._upload_document(filename, data, purpose, limits, max_document_bytes)
        else:
            file = await self._upload_training(filename, data, purpose)
        self.store.set_owner(file.id, owner)
        return file

    async def _upload_training(self, filename: str, data: bytes, purpose: str) -> FileObject:
        if purpose != PURPOSE:
            purposes = ", ".join(f"'{p}'" for p in (PURPOSE, *DOCUMENT_PURPOSES))
            raise invalid(
                "purpose", f"lorag stores files for fine-tuning and vector stores: purpose must be {purposes}"
            )
        name = Path(filename or "").name
        if not name.endswith(".jsonl"):
            raise invalid("file", f"'{name or 'the upload'}' is not a .jsonl file: fine-tuning files are JSON lines")
        if len(data) > self.max_file_bytes:
            raise too_large(name, self.max_file_bytes)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.files_dir, prefix=".upload-") as tmp:
            staged = Path(tmp) / name
            staged.write_bytes(data)
            try:
                found = await check(str(staged))
            except CheckFailed as e:
                raise invalid("file", str(e).replace(f"{tmp}/", "")) from None
            file = FileObject(id=new_id("file"), bytes=len(data), created_at=int(time.time()), filename=name,
                              purpose=purpose, **found)  # fmt: skip
            stored = self.files_dir / f"{file.id}.jsonl"
            with staged.open("rb") as source:
                os.fsync(source.fileno())
            staged.rename(stored)
        self.store.add_file(file, stored)
        return file

    async def _upload_document(
        self, filename: str, data: bytes, purpose: str, limits: Limits, max_bytes: int
    ) -> FileObject:
        name = Path(filename or "").name or "upload"
        if len(data) > (max_bytes or self.max_file_bytes):
            raise too_large(name, max_bytes or self.max_file_bytes)
        try:
            documents = await asyncio.to_thread(load_document, name, data, limits=limits)
        except DocumentTooLarge as e:
            raise LoragError(413, str(e), param="file", code="file_too_large") from None
        except LoaderError as e:
            raise invalid("file", f"no knowledge-base loader reads this file: {e}") from None
        file = FileObject(id=new_id("file"), bytes=len(data), created_at=int(time.time()), filename=name,
                          purpose=purpose, format="document", rows=len(documents))  # fmt: skip
        self.files_dir.mkdir(parents=True, exist_ok=True)
        stored = self.files_dir / f"{file.id}{Path(name).suffix.lower()}"
        with tempfile.NamedTemporaryFile(dir=self.files_dir, prefix=".upload-", delete=False) as staged:
            staged.write(data)
            staged.flush()
            os.fsync(staged.fileno())
        Path(staged.name).rename(stored)
        self.store.add_file(file, stored)
        return file

    def files(
        self, purpose: str | None, after: str | None, limit: int, order: str, caller: Caller = None
    ) -> Page[FileObject]:
        return self.store.files(purpose, after, limit, newest_first=order == "desc", owner=caller)

    def file(self, file_id: str, caller: Caller = None) -> tuple[FileObject, Path]:
        found = self.store.file(file_id)
        if found is None or not self._sees(file_id, caller):
            raise LoragError(404, f"No such File object: {file_id}", param="id", code="file_not_found")
        return found

    def _sees(self, object_id: str, caller: Caller) -> bool:
        return caller is None or self.store.owner(object_id) == caller

    def delete_file(self, file_id: str, caller: Caller = None) -> FileDeleted:
        _, path = self.file(file_id, caller)
        if users := self.store.jobs_using(file_id):
            raise LoragError(409, f"file {file_id} is used by the unfinished job {users[0]}", code="file_in_use")
        self.store.delete_file(file_id)
        path.unlink(missing_ok=True)
        return FileDeleted(id=file_id)

    # jobs

    async def create(
        self,
        request: JobCreate,
        admin: bool = False,
        owner: str = OPEN,
        may_use_kb: Callable[[str], bool] = lambda _: True,
    ) -> Job:
        """A job of the key ``owner``, checked and started, on files that key stored (any, for an ``admin``
        key, which may also set the extension's admin fields); a retriever job on a knowledge base ``may_use_kb``."""
        caller = None if admin else owner
        base = self.base_model()
        if request.model != base:
            raise invalid("model", f"lorag fine-tunes the base model it serves, '{base}', not '{request.model}'")
        if is_retriever(request):
            if self.knowledge is None:
                raise invalid("lorag.method", "this gateway has no knowledge bases to tune")
            job = await self.retriever.create(request, new_id("ftjob"), base, may_use_kb)
            self.store.set_owner(job.id, owner)
            self.retriever.start(job)
            return job
        if request.integrations:
            raise invalid("integrations", "integrations (Weights & Biases) are not supported")
        training = self._training_file(request.training_file, "training_file", caller)
        validation = request.validation_file and self._training_file(request.validation_file, "validation_file", caller)
        kind, given = job_method(request)
        hyperparameters = resolve(kind, given)
        job_id = new_id("ftjob")
        name = fine_tuned_name(base, request.suffix, job_id)
        folders = [self.adapters_dir, self.folder]
        key_file = self.runner.work_dir(job_id) / JUDGE_KEY
        recipe = recipe_for(request, kind, hyperparameters, name, training, validation, admin, folders,
                            self.allow_python_graders, self.judges, key_file)  # fmt: skip
        job = Job(
            id=job_id, created_at=int(time.time()), hyperparameters=hyperparameters, model=base,
            seed=request.seed if request.seed is not None else 42, status="validating_files",
            training_file=request.training_file, validation_file=request.validation_file,
            integrations=request.integrations, metadata=request.metadata, user_provided_suffix=request.suffix,
            method={"type": kind, kind: {"hyperparameters": hyperparameters.model_dump(exclude_none=True)}
                    | ({"grader": recipe["graders"]} if kind == "reinforcement" else {})
                    | ({"response_format": recipe["response_format"]} if "response_format" in recipe else {})},
            lorag=request.lorag,
        )  # fmt: skip
        self.store.add_job(job, recipe)
        self.store.set_owner(job_id, owner)
        self.runner.event(job_id, f"Validating training file: {request.training_file}")
        self.runner.start(job)
        return job

    def _training_file(self, file_id: str, param: str, caller: Caller) -> Path:
        if not file_id:
            raise invalid(param, f"{param} is required: the id of a file uploaded with purpose 'fine-tune'")
        found = self.store.file(file_id)
        if found is None or not self._sees(file_id, caller):
            raise invalid(param, f"invalid {param}: no file '{file_id}' (upload it with purpose 'fine-tune')")
        return found[1]

    def jobs(self, after: str | None, limit: int, caller: Caller = None) -> Page[Job]:
        return self.store.jobs(after, limit, caller)

    def job(self, job_id: str, caller: Caller = None) -> Job:
        job = self.store.job(job_id)
        if job is None or not self._sees(job_id, caller):
            raise LoragError(404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id",
                             code="fine_tuning_job_not_found")  # fmt: skip
        return job

    async def cancel(self, job_id: str, caller: Caller = None) -> Job:
        job = self.job(job_id, caller)
        if job.status in FINISHED:
            raise LoragError(400, f"job {job_id} has already {job.status}: only an unfinished job can be cancelled",
                             code="job_finished")  # fmt: skip
        await self.runner.cancel(job_id)
        return self.job(job_id)

    async def pause(self, job_id: str, caller: Caller = None) -> Job:
        job = self.job(job_id, caller)
        if job.method.get("type") == METHOD:
            raise LoragError(400, f"job {job_id} tunes a retriever, which cannot be paused: cancel it (the knowledge "
                                  "base stays as it was) and create it again", code="job_not_pausable")  # fmt: skip
        if job.status != "running" or job_id not in self.runner.processes:
            raise LoragError(400, f"job {job_id} is {job.status}: only a running job can be paused",
                             code="job_not_running")  # fmt: skip
        await self.runner.pause(job_id)
        return self.job(job_id)

    def resume(self, job_id: str, caller: Caller = None) -> Job:
        job = self.job(job_id, caller)
        if job.status != "paused":
            raise LoragError(400, f"job {job_id} is {job.status}: only a paused job can be resumed",
                             code="job_not_paused")  # fmt: skip
        self.runner.resume(job_id)
        return self.job(job_id)

    def events(self, job_id: str, after: str | None, limit: int, caller: Caller = None) -> Page[JobEvent]:
        self.job(job_id, caller)
        return self.store.events(job_id, after, limit)

    def checkpoints(self, job_id: str, after: str | None, limit: int, caller: Caller = None) -> Page[Checkpoint]:
        self.job(job_id, caller)
        return self.store.checkpoints(job_id, after, limit)


def _checked_filename(filename: str) -> str:
    """The upload's file name without folders; 400 for one a file system cannot hold (control characters, over 255
    bytes), rather than an error when it is staged."""
    name = Path(filename or "").name
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise invalid("file", "the file name holds a control character")
    if len(name.encode("utf-8")) > 255:
        raise invalid("file", f"the file name is {len(name.encode('utf-8'))} bytes long; at most 255")
    return name
