"""Routes of OpenAI's files and fine-tuning API: ``/v1/files`` and ``/v1/fine_tuning/jobs``.

Reading jobs, events, checkpoints and file descriptions needs a key as every ``/v1`` route does;
uploading ``fine-tune`` files, deleting and downloading files and creating, cancelling, pausing and resuming jobs
are training actions, for admin keys and keys whose entry says ``train: true`` (``reads`` and
``writes``; the app factory attaches the checks). Any key may upload an ``assistants`` or
``user_data`` file (a document for vector stores), checked as a knowledge-base upload is.
Routes are thin: the work is in :class:`gateway.jobs.service.FineTuning`. This module knows nothing about training.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from gateway.api import auth
from gateway.jobs.protocol import Checkpoint, FileDeleted, FileObject, Job, JobCreate, JobEvent, Page
from gateway.jobs.service import PURPOSE, FineTuning


def fine_tuning(request: Request) -> FineTuning:
    return request.app.state.gateway.fine_tuning


Service = Annotated[FineTuning, Depends(fine_tuning)]
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
    uploaded = await service.upload(file.filename or "", data, purpose, knowledge.limits, knowledge.max_upload_bytes)
    service.store.set_file_owner(uploaded.id, auth.principal_of(request).name)
    return uploaded


@reads.get("/files")
async def list_files(
    service: Service,
    purpose: str | None = None,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Literal["asc", "desc"] = "desc",
) -> Page[FileObject]:
    return service.files(purpose, after, limit, order)


@reads.get("/files/{file_id}")
async def retrieve_file(file_id: str, service: Service) -> FileObject:
    return service.file(file_id)[0]


@writes.get("/files/{file_id}/content", response_class=FileResponse)
async def file_content(file_id: str, service: Service) -> FileResponse:
    """The file as uploaded (training data may be private: a training key is needed)."""
    file, path = service.file(file_id)
    return FileResponse(path, media_type="application/jsonl", filename=file.filename)


@writes.delete("/files/{file_id}")
async def delete_file(file_id: str, service: Service) -> FileDeleted:
    """409 while an unfinished job trains on it."""
    return service.delete_file(file_id)


@writes.post("/fine_tuning/jobs")
async def create_job(body: JobCreate, service: Service, request: Request) -> Job:
    """Train an adapter of the served base model; it is served as ``fine_tuned_model`` once the job succeeds."""
    return await service.create(body, admin=auth.principal_of(request).admin)


@reads.get("/fine_tuning/jobs")
async def list_jobs(
    service: Service, after: After = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> Page[Job]:
    return service.jobs(after, limit)


@reads.get("/fine_tuning/jobs/{job_id}")
async def retrieve_job(job_id: str, service: Service) -> Job:
    return service.job(job_id)


@writes.post("/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, service: Service) -> Job:
    """Stop the job wherever it is; a cancelled job registers no model."""
    return await service.cancel(job_id)


@writes.post("/fine_tuning/jobs/{job_id}/pause")
async def pause_job(job_id: str, service: Service) -> Job:
    """Stop a running job's training; its checkpoints are kept, and ``/resume`` trains on from the last one."""
    return await service.pause(job_id)


@writes.post("/fine_tuning/jobs/{job_id}/resume")
async def resume_job(job_id: str, service: Service) -> Job:
    """Train a paused job again, from its last checkpoint (from the start if it had none)."""
    return service.resume(job_id)


@reads.get("/fine_tuning/jobs/{job_id}/events")
async def list_events(
    job_id: str, service: Service, after: After = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> Page[JobEvent]:
    """Newest first: messages, and a ``metrics`` event (step, losses, learning rate) for every step logged."""
    return service.events(job_id, after, limit)


@reads.get("/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(
    job_id: str, service: Service, after: After = None, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> Page[Checkpoint]:
    """Newest first: one per epoch, with the step and its train and validation loss."""
    return service.checkpoints(job_id, after, limit)
