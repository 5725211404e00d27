"""``/v1/compare``: start a comparison inside the gateway, follow it, fetch its report.

``POST /v1/compare`` checks the questions and the arms, answers 202 with a ``compare.run``
object, and runs :func:`gateway.compare.run_compare` as a background task against this same app
(``httpx.ASGITransport``, with the caller's ``Authorization`` header), so the answers take the
same path as any ``/v1/chat/completions`` request. A judge model is checked against its
endpoint's ``GET /models`` before the run starts (400 ``judge``). At most :data:`MAX_RUNNING`
runs go at once; another is refused with 429 ``too_many_compare_runs`` (and ``Retry-After``),
since every run shares the engine with the server's other clients. ``POST
/v1/compare/{id}/cancel`` cancels a running run: its chat requests are cancelled (so the engine
stops generating them) and it is kept as ``cancelled``, without a report. Runs are kept in
memory while the server lives; each writes its report files and ``run.json`` into
``<reports_dir>/<run id>/``, and runs found there are listed again after a restart. Any valid API
key may start or cancel a run. This module knows nothing about scoring or how the report looks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import openai
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from openai import AsyncOpenAI
from pydantic import BaseModel, Field, SecretStr, model_validator

from gateway.compare import CompareConfig, CompareError, run_compare, validate_arms, validate_judge
from gateway.errors import LoragError, invalid
from gateway.protocol import new_id, now
from gateway.questions import QuestionsError, parse_questions, sample
from gateway.report import write_report

log = logging.getLogger(__name__)
MEDIA_TYPES = {
    "report.html": "text/html; charset=utf-8",
    "report.md": "text/markdown; charset=utf-8",
    "report.json": "application/json",
    "chart.png": "image/png",
}
REPORT_LINKS = {"html": "report.html", "markdown": "report.md", "json": "report.json", "chart": "chart.png"}
LOCAL = "http://lorag.internal"  # the base URL of the app talking to itself
MAX_RUNNING = 2  # compare runs going at once; one more is answered 429
RETRY_AFTER_S = 30  # what a 429 asks a client to wait: runs take minutes


class JudgeSpec(BaseModel):
    """A judge model; without ``base_url``, this gateway serves it."""

    model: str = Field(min_length=1)
    base_url: str | None = Field(None, description="Any OpenAI-compatible API, e.g. https://api.openai.com/v1.")
    api_key: SecretStr | None = Field(None, description="Key for base_url; never stored or echoed.")


class QuestionsFile(BaseModel):
    """A questions file sent inline: JSONL or the Wiki-Newpages QA JSON (see docs/compare.md)."""

    filename: str = Field(min_length=1)
    content: str


class CompareRequest(BaseModel):
    """POST /v1/compare: the arms, the questions (inline or as a file), and how to ask them."""

    arms: list[str] = Field(min_length=1, description="Model names: base, adapter, <model>@<kb>.")
    questions: list[dict[str, Any]] | None = Field(None, description="[{question, answer, id?, context?}]")
    questions_file: QuestionsFile | None = None
    judge: JudgeSpec | None = None
    max_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0, le=2)
    concurrency: int = Field(4, ge=1, le=64)
    limit: int | None = Field(None, ge=1, description="Ask a seeded random sample of this many questions.")
    seed: int = Field(0, description="Seed of the sample and of the statistics.")
    system: str | None = Field(None, description="A system prompt sent before every question.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.questions is None) == (self.questions_file is None):
            raise ValueError("give either 'questions' or 'questions_file'")
        return self


class Progress(BaseModel):
    done: int
    total: int


class CompareRun(BaseModel):
    """A comparison started through the API."""

    id: str
    object: Literal["compare.run"] = "compare.run"
    status: Literal["running", "completed", "failed", "cancelled"]
    created: int
    arms: list[str]
    progress: Progress
    summary: list[dict[str, Any]] | None = None  # per arm, once completed (see docs/compare.md)
    error: str | None = None
    report: dict[str, str]  # html, markdown, json, chart: where GET fetches each file once completed


class CompareRunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CompareRun]


@dataclass
class Runs:
    """The runs of one app: in memory, and on disk under ``folder``."""

    folder: Path
    runs: dict[str, CompareRun] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)  # the runs going now, by id

    def __post_init__(self):
        for saved in sorted(self.folder.glob("cmp-*/run.json")):
            try:
                run = CompareRun.model_validate_json(saved.read_text())
            except ValueError:
                log.warning("ignoring unreadable compare run %s", saved)
                continue
            if run.status == "running":  # the server stopped while it ran
                run = run.model_copy(update={"status": "failed", "error": "the server stopped during the run"})
            self.runs[run.id] = run

    def get(self, run_id: str) -> CompareRun:
        if run_id not in self.runs:
            raise LoragError(404, f"no compare run '{run_id}'", type="not_found", code="compare_run_not_found")
        return self.runs[run_id]

    def save(self, run: CompareRun) -> None:
        self.runs[run.id] = run
        (self.folder / run.id).mkdir(parents=True, exist_ok=True)
        (self.folder / run.id / "run.json").write_text(run.model_dump_json(indent=1))


def runs_of(request: Request) -> Runs:
    state = request.app.state
    if not hasattr(state, "compare_runs"):
        state.compare_runs = Runs(Path(state.gateway.settings.reports_dir))
    return state.compare_runs


Service = Annotated[Runs, Depends(runs_of)]
router = APIRouter(tags=["compare"])


@router.post("/compare", status_code=202)
async def start_compare(body: CompareRequest, request: Request, service: Service) -> CompareRun:
    """Start running every question through every arm; follow it with GET /v1/compare/{id}."""
    try:
        if body.questions_file is not None:
            questions = parse_questions(body.questions_file.content, body.questions_file.filename)
        else:
            questions = parse_questions("\n".join(json.dumps(q) for q in body.questions), "questions")
        questions = sample(questions, body.limit, body.seed)
        config = CompareConfig(
            arms=body.arms, max_tokens=body.max_tokens, temperature=body.temperature, concurrency=body.concurrency,
            system=body.system, judge_model=body.judge and body.judge.model,
            judge_base_url=body.judge and body.judge.base_url, seed=body.seed,
        )  # fmt: skip
    except QuestionsError as e:
        raise invalid("questions_file" if body.questions_file else "questions", str(e)) from None
    except CompareError as e:
        raise invalid("arms", str(e)) from None
    client = _self_client(request)
    judge_client = _judge_client(body.judge) if body.judge and body.judge.base_url else None
    try:
        await _check(client, judge_client, config)
    except LoragError:
        await _close(client, judge_client)
        raise
    if len(service.tasks) >= MAX_RUNNING:  # no await between this check and the task's start
        await _close(client, judge_client)
        raise LoragError(
            429, f"{len(service.tasks)} compare runs are going, the most at once: retry when one has finished, "
            "or cancel one with POST /v1/compare/{id}/cancel", type="rate_limit_error",
            code="too_many_compare_runs", headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    run_id = new_id("cmp")
    links = {name: f"/v1/compare/{run_id}/{file}" for name, file in REPORT_LINKS.items()}
    run = CompareRun(
        id=run_id, status="running", created=now(), arms=config.arms,
        progress=Progress(done=0, total=len(questions) * len(config.arms)), report=links,
    )  # fmt: skip
    service.save(run)
    task = asyncio.create_task(_execute(service, run_id, client, questions, config, judge_client))
    service.tasks[run_id] = task
    task.add_done_callback(lambda _: service.tasks.pop(run_id, None))
    return run


async def _check(client: AsyncOpenAI, judge_client: AsyncOpenAI | None, config: CompareConfig) -> None:
    """400 ``arms`` for an arm this gateway does not serve, 400 ``judge`` for a judge model its endpoint lacks."""
    try:
        await validate_arms(client, config.arms)
    except CompareError as e:
        raise invalid("arms", str(e)) from None
    except openai.APIStatusError as e:
        raise LoragError(e.status_code, f"cannot check the arms: {e.message}", type="server_error") from None
    if config.judge_model:
        try:
            await validate_judge(judge_client or client, config.judge_model, config.judge_base_url or "this gateway")
        except CompareError as e:
            raise invalid("judge", str(e)) from None


async def _execute(service: Runs, run_id: str, client, questions, config, judge_client) -> None:
    def progress(done: int, total: int) -> None:
        service.runs[run_id] = service.runs[run_id].model_copy(update={"progress": Progress(done=done, total=total)})

    update: dict[str, Any] = {"status": "failed", "error": "the run stopped"}
    try:
        result = await run_compare(client, questions, config, judge_client=judge_client, progress=progress)
        report = await asyncio.to_thread(write_report, result, service.folder / run_id)
        update = {"status": "completed", "summary": report["summary"]}
    except asyncio.CancelledError:  # POST /v1/compare/{id}/cancel: its requests are cancelled with it
        update = {"status": "cancelled"}
        raise
    except Exception as e:  # the run failed as a whole; the server goes on
        log.exception("compare run %s failed", run_id)
        update = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    finally:
        await _close(client, judge_client)
        service.save(service.runs[run_id].model_copy(update=update))


async def _close(client: AsyncOpenAI, judge_client: AsyncOpenAI | None) -> None:
    await client.close()
    if judge_client is not None:
        await judge_client.close()


def _self_client(request: Request) -> AsyncOpenAI:
    """An OpenAI client for this very app, authenticated as the caller."""
    header = request.headers.get("authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else "none"
    transport = httpx.ASGITransport(app=request.app, raise_app_exceptions=False)  # a failure is a 500, as over HTTP
    http = httpx.AsyncClient(transport=transport, base_url=LOCAL, timeout=None)
    return AsyncOpenAI(base_url=f"{LOCAL}/v1", api_key=key, http_client=http, max_retries=0)


def _judge_client(judge: JudgeSpec) -> AsyncOpenAI:
    key = judge.api_key.get_secret_value() if judge.api_key else "none"
    return AsyncOpenAI(base_url=judge.base_url, api_key=key, max_retries=2)


@router.get("/compare")
async def list_runs(service: Service) -> CompareRunList:
    """Every run this server knows, newest first."""
    return CompareRunList(data=sorted(service.runs.values(), key=lambda run: run.created, reverse=True))


@router.get("/compare/{run_id}")
async def get_run(run_id: str, service: Service) -> CompareRun:
    return service.get(run_id)


@router.post("/compare/{run_id}/cancel")
async def cancel_run(run_id: str, service: Service) -> CompareRun:
    """Stop a running run: its chat requests are cancelled and it is kept as ``cancelled``, without a report."""
    run = service.get(run_id)
    task = service.tasks.get(run_id)
    if task is None or run.status != "running":
        raise LoragError(409, f"compare run '{run_id}' is {run.status}: only a running run can be cancelled",
                         code="compare_run_not_running")  # fmt: skip
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)  # its requests and clients are closed when this returns
    return service.get(run_id)


@router.get("/compare/{run_id}/{name}")
async def get_report_file(run_id: str, name: str, service: Service) -> FileResponse:
    """report.html, report.md, report.json or chart.png of a completed run."""
    run = service.get(run_id)
    if name not in MEDIA_TYPES:
        raise LoragError(404, f"no file '{name}': use one of {', '.join(MEDIA_TYPES)}", type="not_found")
    if run.status != "completed":
        raise LoragError(404, f"compare run '{run_id}' is {run.status}: no report", type="not_found",
                         code="compare_report_not_ready")  # fmt: skip
    return FileResponse(service.folder / run_id / name, media_type=MEDIA_TYPES[name])
