"""Routes of OpenAI's files and fine-tuning API: ``/v1/files`` and ``/v1/fine_tuning/jobs``.

Reading jobs, events, checkpoints and file descriptions needs a key as every ``/v1`` route does;
uploading ``fine-tune`` files, deleting and downloading files and creating, cancelling, pausing and resuming jobs
are training actions, for admin keys and keys whose entry says ``train: true`` (``reads`` and
``writes``; the app factory attaches the checks). Files and jobs belong to the key that made them:
other keys get 404, admin keys reach all. A retriever job (``lorag.method: "retriever"``) re-indexes a knowledge
base, so it also needs what a knowledge-base write needs (an admin key when admin keys are configured) and a
knowledge base the key may use. Any key may upload an ``assistants`` or
``user_data`` file (a document for vector stores), checked as a knowledge-base upload is.
Routes are thin: the work is in :class:`gateway.jobs.service.FineTuning`. This module knows nothing about training.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from gateway.api import auth
from gateway.jobs.protocol import Checkpoint, FileDeleted, FileObject, Job, JobCreate, JobEvent, Page
from gateway.jobs.retriever import is_retriever
from gateway.jobs.service import PURPOSE, FineTuning
from gateway.knowledge.vector_stores import may_use


async def fine_tuning(request: Request) -> FineTuning:
    return request.app.state.gateway.fine_tuning


async def caller(request: Request) -> str | None:
    """Whose files and jobs the request reaches: its key's own, or every one for an admin key."""
    principal = auth.principal_of(request)
    return None if principal.admin else principal.name


Service = Annotated[FineTuning, Depends(fine_tuning)]
Caller = Annotated[str | None, Depends(caller)]
After = Annotated[str | None, Query(description="The last id of the previous page.")]
reads = APIRouter(tags=["fine-tuning"])
writes = APIRouter(tags=["fine-tuning"], dependencies=[Depends(auth.trainer)])


@reads.post("/files")
async def upload_file(
    service: Service,
    request: Request,
    credentials: auth.Credentials,
    file: Annotated[UploadFile, Form(description="Fine-tuning JSON lines, or a document a knowledge base reads.")],
    purpose: Annotated[str, Form(description="'fine-tune', or 'assistants' / 'user_data' for vector stores.")],
) -> FileObject:
    """Upload training data (every row is checked first, and a bad one is named in the 400) or a document."""
    if purpose == PURPOSE:
        request.app.state.keys.check_trainer(auth.principal_of(request), credentials)
    knowledge = request.app.state.gateway.knowledge
    data = await file.read(max(service.max_file_bytes, knowledge.max_upload_bytes) + 1)
    limits, most = knowledge.limits, knowledge.max_upload_bytes
    return await service.upload(file.filename or "", data, purpose, limits, most, auth.principal_of(request).name)


@reads.get("/files")
async def list_files(
    service: Service,
    caller: Caller,
    purpose: str | None = None,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Literal["asc", "desc"] = "desc",
) -> Page[FileObject]:
    return service.files(purpose, after, limit, order, caller)


@reads.get("/files/{file_id}")
async def retrieve_file(file_id: str, service: Service, caller: Caller) -> FileObject:
    return service.file(file_id, caller)[0]


@writes.get("/files/{file_id}/content", response_class=FileResponse)
async def file_content(file_id: str, service: Service, caller: Caller) -> FileResponse:
    """The file as uploaded (training data may be private: a training key is needed)."""
    file, path = service.file(file_id, caller)
    return FileResponse(path, media_type="application/jsonl", filename=file.filename)


@writes.delete("/files/{file_id}")
async def delete_file(file_id: str, service: Service, caller: Caller) -> FileDeleted:
    """409 while an unfinished job trains on it."""
    return service.delete_file(file_id, caller)


@writes.post("/fine_tuning/jobs")
async def create_job(body: JobCreate, service: Service, request: Request, credentials: auth.Credentials) -> Job:
    """Train an adapter of the served base model; it is served as ``fine_tuned_model`` once the job succeeds. With
    ``lorag.method: "retriever"``: tune a knowledge base's embedder and re-index it (docs/fine-tuning-api.md)."""
    principal = auth.principal_of(request)
    if is_retriever(body):  # it changes a knowledge base: as a knowledge-base write, an admin key's
        request.app.state.keys.check_admin(principal, credentials)
    knowledge = request.app.state.gateway.knowledge
    return await service.create(body, principal.admin, principal.name, lambda kb: may_use(knowledge, kb, principal))


@reads.get("/fine_tuning/jobs")
async def list_jobs(
    service: Service, caller: Caller, after: After = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> Page[Job]:
    return service.jobs(after, limit, caller)


@reads.get("/fine_tuning/jobs/{job_id}")
async def retrieve_job(job_id: str, service: Service, caller: Caller) -> Job:
    return service.job(job_id, caller)


@writes.post("/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, service: Service, caller: Caller) -> Job:
    """Stop the job wherever it is; a cancelled job registers no model."""
    return await service.cancel(job_id, caller)


@writes.post("/fine_tuning/jobs/{job_id}/pause")
async def pause_job(job_id: str, service: Service, caller: Caller) -> Job:
    """Stop a running job's training; its checkpoints are kept, and ``/resume`` trains on from the last one."""
    return await service.pause(job_id, caller)


@writes.post("/fine_tuning/jobs/{job_id}/resume")
async def resume_job(job_id: str, service: Service, caller: Caller) -> Job:
    """Train a paused job again, from its last checkpoint (from the start if it had none)."""
    return service.resume(job_id, caller)


@reads.get("/fine_tuning/jobs/{job_id}/events")
async def list_events(
    job_id: str, service: Service, caller: Caller, after: After = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Page[JobEvent]:  # fmt: skip
    """Newest first: messages, and a ``metrics`` event (step, losses, learning rate) for every step logged."""
    return service.events(job_id, after, limit, caller)


@reads.get("/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(
    job_id: str, service: Service, caller: Caller, after: After = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Page[Checkpoint]:  # fmt: skip
    """Newest first: one per epoch, with the step and its train and validation loss."""
    return service.checkpoints(job_id, after, limit, caller)
