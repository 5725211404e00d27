"""The comparisons a gateway runs for its API clients: start, follow, cancel, and their report files.

:meth:`CompareService.start` checks the questions and the arms, saves a ``running``
:class:`~gateway.compare.protocol.CompareRun` and runs :func:`gateway.compare.runner.run_compare`
as a background task. It reaches the gateway the way ``lorag compare`` does, through an OpenAI
client: ``connect(api_key)`` (given by the app) returns one that talks to the app itself with
the caller's key, so the answers take the same path as any ``/v1/chat/completions`` request. A
judge model is checked against its endpoint's ``GET /models`` before the run starts (400
``judge``). At most ``max_running`` runs go at once; another is refused with 429
``too_many_compare_runs`` (and ``Retry-After``), since every run shares the engine with the
server's other clients. :meth:`cancel` cancels a running run: its chat requests are cancelled
(so the engine stops generating them) and it is kept as ``cancelled``, without a report. Runs
are kept in memory while the server lives; each writes its report files and ``run.json`` into
``<folder>/<run id>/``, and runs found there are listed again after a restart (a run that was
going is then ``failed``). This module knows nothing about routes or how a report looks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from gateway.compare.protocol import CompareRequest, CompareRun, JudgeSpec, Progress
from gateway.compare.report import write_report
from gateway.compare.rewarding import add_rewards, reward_model_folder
from gateway.compare.runner import CompareConfig, CompareError, run_compare, validate_arms, validate_judge
from gateway.data.questions import Question, QuestionsError, parse_questions, sample
from gateway.errors import LoragError, invalid

log = logging.getLogger(__name__)
MEDIA_TYPES = {
    "report.html": "text/html; charset=utf-8",
    "report.md": "text/markdown; charset=utf-8",
    "report.json": "application/json",
    "chart.png": "image/png",
}
REPORT_LINKS = {"html": "report.html", "markdown": "report.md", "json": "report.json", "chart": "chart.png"}
MAX_RUNNING = 2  # compare runs going at once; one more is answered 429
RETRY_AFTER_S = 30  # what a 429 asks a client to wait: runs take minutes
Connect = Callable[[str | None], AsyncOpenAI]  # the caller's API key -> a client of this gateway


class CompareService:
    """The runs of one gateway: in memory, and on disk under ``folder``."""

    def __init__(
        self, folder: Path, connect: Connect, max_running: int = MAX_RUNNING, outbound: tuple[str, ...] = (),
        adapters_dir: Path = Path("adapters"), cache_dir: Path = Path("~/.cache/lorag"),
    ):  # fmt: skip
        self.folder, self.connect, self.max_running = Path(folder), connect, max_running
        self.adapters_dir, self.cache_dir = Path(adapters_dir), Path(cache_dir).expanduser()  # reward models
        self.outbound = outbound  # URL prefixes a judge endpoint may have; none: only this gateway
        self.runs: dict[str, CompareRun] = {}
        self.tasks: dict[str, asyncio.Task] = {}  # the runs going now, by id
        for saved in sorted(self.folder.glob("cmp-*/run.json")):
            try:
                run = CompareRun.model_validate_json(saved.read_text())
            except ValueError:
                log.warning("ignoring unreadable compare run %s", saved)
                continue
            if run.status == "running":  # the server stopped while it ran
                run = run.model_copy(update={"status": "failed", "error": "the server stopped during the run"})
            self.runs[run.id] = run

    def get(self, run_id: str, viewer: str | None = None) -> CompareRun:
        """The run; 404 if there is none, or if ``viewer`` (a key's name; None: an admin) did not start it."""
        if run_id not in self.runs or not _sees(viewer, self.runs[run_id]):
            raise LoragError(404, f"no compare run '{run_id}'", type="not_found", code="compare_run_not_found")
        return self.runs[run_id]

    def listing(self, viewer: str | None = None) -> list[CompareRun]:
        """Every run ``viewer`` may see, newest first."""
        runs = [run for run in self.runs.values() if _sees(viewer, run)]
        return sorted(runs, key=lambda run: run.created, reverse=True)

    async def start(
        self, body: CompareRequest, api_key: str | None, run_id: str, created: int, owner: str | None = None
    ) -> CompareRun:
        """Check the request and start the run; 400 naming the field at fault, 429 when enough runs are going."""
        questions, config = _parse(body)
        reward = None
        if body.reward_model:
            if "/" in body.reward_model:
                raise invalid("reward_model", "name a reward model in the adapters folder, not a path")
            try:
                reward = reward_model_folder(body.reward_model, self.adapters_dir)
            except CompareError as e:
                raise invalid("reward_model", str(e)) from None
        if body.judge and body.judge.base_url and not allowed_url(body.judge.base_url, self.outbound):
            raise invalid(
                "judge.base_url",
                "this gateway calls no endpoint outside itself unless its operator allows it (LORAG_OUTBOUND_URLS)",
            )
        client = self.connect(api_key)
        judge_client = _judge_client(body.judge) if body.judge and body.judge.base_url else None
        try:
            await _check(client, judge_client, config)
            if len(self.tasks) >= self.max_running:  # no await between this check and the task's start
                raise LoragError(
                    429, f"{len(self.tasks)} compare runs are going, the most at once: retry when one has finished, "
                    "or cancel one with POST /v1/compare/{id}/cancel", type="rate_limit_error",
                    code="too_many_compare_runs", headers={"Retry-After": str(RETRY_AFTER_S)},
                )  # fmt: skip
        except LoragError:
            await _close(client, judge_client)
            raise
        links = {name: f"/v1/compare/{run_id}/{file}" for name, file in REPORT_LINKS.items()}
        run = CompareRun(
            id=run_id, status="running", created=created, arms=config.arms,
            progress=Progress(done=0, total=len(questions) * len(config.arms)), report=links, owner=owner,
        )  # fmt: skip
        self._save(run)
        task = asyncio.create_task(self._execute(run_id, client, questions, config, judge_client, reward))
        self.tasks[run_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(run_id, None))
        return run

    async def cancel(self, run_id: str, viewer: str | None = None) -> CompareRun:
        """Stop a running run; 409 ``compare_run_not_running`` for one that is not going."""
        run = self.get(run_id, viewer)
        task = self.tasks.get(run_id)
        if task is None or run.status != "running":
            raise LoragError(409, f"compare run '{run_id}' is {run.status}: only a running run can be cancelled",
                             code="compare_run_not_running")  # fmt: skip
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its requests and clients are closed when this returns
        return self.get(run_id)

    def report_file(self, run_id: str, name: str, viewer: str | None = None) -> Path:
        """A report file of a completed run; 404 for another name or a run without a report."""
        run = self.get(run_id, viewer)
        if name not in MEDIA_TYPES:
            raise LoragError(404, f"no file '{name}': use one of {', '.join(MEDIA_TYPES)}", type="not_found")
        if run.status != "completed":
            raise LoragError(404, f"compare run '{run_id}' is {run.status}: no report", type="not_found",
                             code="compare_report_not_ready")  # fmt: skip
        return self.folder / run_id / name

    def _save(self, run: CompareRun) -> None:
        self.runs[run.id] = run
        (self.folder / run.id).mkdir(parents=True, exist_ok=True)
        (self.folder / run.id / "run.json").write_text(run.model_dump_json(indent=1))

    async def _execute(self, run_id: str, client, questions, config, judge_client, reward: Path | None) -> None:
        def progress(done: int, total: int) -> None:
            self.runs[run_id] = self.runs[run_id].model_copy(update={"progress": Progress(done=done, total=total)})

        update: dict[str, Any] = {"status": "failed", "error": "the run stopped"}
        try:
            result = await run_compare(client, questions, config, judge_client=judge_client, progress=progress)
            if reward is not None:
                await add_rewards(result, reward, self.cache_dir)
            report = await asyncio.to_thread(write_report, result, self.folder / run_id)
            update = {"status": "completed", "summary": report["summary"]}
        except asyncio.CancelledError:  # cancel(): its requests are cancelled with it
            update = {"status": "cancelled"}
            raise
        except Exception as e:  # the run failed as a whole; the server goes on
            log.exception("compare run %s failed", run_id)
            update = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        finally:
            await _close(client, judge_client)
            self._save(self.runs[run_id].model_copy(update=update))


def _sees(viewer: str | None, run: CompareRun) -> bool:
    return viewer is None or run.owner in (None, viewer)


def _parse(body: CompareRequest) -> tuple[list[Question], CompareConfig]:
    """The questions to ask and the run's configuration; 400 ``questions``/``questions_file`` or ``arms``."""
    try:
        if body.questions_file is not None:
            questions = parse_questions(body.questions_file.content, body.questions_file.filename)
        else:
            questions = parse_questions("\n".join(json.dumps(q) for q in body.questions), "questions")
        questions = sample(questions, body.limit, body.seed)
        config = CompareConfig(
            arms=body.arms, max_tokens=body.max_tokens, temperature=body.temperature, concurrency=body.concurrency,
            system=body.system, judge_model=body.judge and body.judge.model,
            judge_base_url=body.judge and body.judge.base_url, seed=body.seed, reward_model=body.reward_model,
        )  # fmt: skip
    except QuestionsError as e:
        raise invalid("questions_file" if body.questions_file else "questions", str(e)) from None
    except CompareError as e:
        raise invalid("arms", str(e)) from None
    return questions, config


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
            where = config.judge_base_url or "this gateway"
            await validate_judge(judge_client or client, config.judge_model, where, echo=judge_client is None)
        except CompareError as e:
            raise invalid("judge", str(e)) from None


async def _close(client: AsyncOpenAI, judge_client: AsyncOpenAI | None) -> None:
    await client.close()
    if judge_client is not None:
        await judge_client.close()


def allowed_url(url: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``url`` is under one of ``prefixes``: the same scheme, host and port, and a path below its path."""
    wanted = urlsplit(url)
    for prefix in map(urlsplit, prefixes):
        same_origin = (wanted.scheme, wanted.hostname, wanted.port) == (prefix.scheme, prefix.hostname, prefix.port)
        base = prefix.path.rstrip("/")
        if same_origin and (wanted.path.rstrip("/") == base or wanted.path.startswith(f"{base}/")):
            return True
    return False


def _judge_client(judge: JudgeSpec) -> AsyncOpenAI:
    key = judge.api_key.get_secret_value() if judge.api_key else "none"
    return AsyncOpenAI(base_url=judge.base_url, api_key=key, max_retries=0)
