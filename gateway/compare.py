"""The A/B runner: every question through every arm of an OpenAI-compatible lorag API, scored.

An arm is a model name as a client would send it: the base model, an adapter, or
``<base-or-adapter>@<kb>`` (retrieval from knowledge base ``kb``). :func:`validate_arms` checks
them all against ``GET /v1/models`` and ``GET /v1/knowledge_bases`` before any question is
asked. :func:`run_compare` then sends each question as one user turn (after an optional system
prompt) to each arm through ``/v1/chat/completions``, at most ``concurrency`` at a time, and
records the answer, latency, completion tokens and the ``citations`` extension field. For a
``@kb`` arm it also asks ``POST /v1/knowledge_bases/{kb}/search`` for the same question with
the server's default options, which are the chat's, to see whether the retrieved chunks hold the
reference answer. A failed request is recorded as that answer's error; the run goes on. With a
judge, each answer also gets a 0/1 verdict (:mod:`gateway.judge`).

It works with any :class:`openai.AsyncOpenAI` client: one pointed at a running server, at a
gateway started in process, or at the app itself through ``httpx.ASGITransport``. This module
knows nothing about statistics or report files (:mod:`gateway.summary`, :mod:`gateway.report`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import openai
from openai import AsyncOpenAI
from tqdm import tqdm

from gateway.judge import Judge
from gateway.questions import Question
from gateway.scoring import answer_in_sources, score

Progress = Callable[[int, int], None]  # (done, total) after each answer


class CompareError(ValueError):
    """A comparison that cannot start (unknown arm, no questions); the message is one line."""


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison."""

    name: str  # the model name sent to the chat API, e.g. "my-adapter@docs"
    model: str  # the base model or adapter before the '@'
    kb: str | None = None  # the knowledge base after the '@', if any


@dataclass(frozen=True)
class CompareConfig:
    """What to run and how; recorded in the report."""

    arms: list[str]
    max_tokens: int = 64  # per answer
    temperature: float = 0.0
    concurrency: int = 4  # chat requests in flight at once
    system: str | None = None  # a system prompt before every question
    judge_model: str | None = None  # a model name at the judge's endpoint; None: no judge
    judge_base_url: str | None = None  # None: the same API as the arms
    seed: int = 0  # for the sample of questions and the statistics

    def __post_init__(self):
        if not self.arms:
            raise CompareError("give at least one arm")
        if len(set(self.arms)) != len(self.arms):
            raise CompareError(f"an arm is named twice in {','.join(self.arms)}")
        if self.concurrency < 1 or self.max_tokens < 1:
            raise CompareError("concurrency and max_tokens must be at least 1")


@dataclass
class Answer:
    """One arm's answer to one question, and its scores."""

    question_id: str
    arm: str
    text: str = ""
    latency_s: float | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    citations: list[dict] | None = None  # the response's `citations` extension field, as sent
    sources: list[str] | None = None  # @kb arms: the text of the chunks a search for the question returns
    scores: dict[str, float | None] = field(default_factory=dict)  # exact_match, f1, rouge_l[, source_recall, judge]
    judge_raw: str | None = None  # the judge's reply, as it came
    error: str | None = None  # why the chat request failed (then there are no scores)


@dataclass
class CompareResult:
    """A finished comparison: the configuration, the questions and every answer."""

    config: CompareConfig
    questions: list[Question]
    answers: list[Answer]  # question-major: every arm's answer to question 0, then to question 1, ...
    started: str
    finished: str
    duration_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def parse_arms(text: str) -> list[str]:
    """``"base, adapter,base@kb"`` -> ``["base", "adapter", "base@kb"]``."""
    return [arm.strip() for arm in text.split(",") if arm.strip()]


async def validate_arms(client: AsyncOpenAI, names: list[str]) -> list[Arm]:
    """Every arm as the server knows it; :class:`CompareError` naming the first one it does not serve."""
    models = {model.id async for model in client.models.list()}
    kbs = await knowledge_bases(client)
    arms = []
    for name in names:
        model, at, kb = name.rpartition("@")
        if at and model in models and kb in kbs:
            arms.append(Arm(name, model, kb))
        elif name in models:
            arms.append(Arm(name, name))
        else:
            plain = sorted(m for m in models if "@" not in m)
            raise CompareError(
                f"unknown arm '{name}': use one of the models {', '.join(plain)}, or '<model>@<kb>' "
                f"with a knowledge base from {', '.join(sorted(kbs)) or '(none on this server)'}"
            )
    return arms


async def knowledge_bases(client: AsyncOpenAI) -> set[str]:
    """Names of the server's knowledge bases (none on a server without the knowledge-base API)."""
    try:
        listing = await client.get("/knowledge_bases", cast_to=object)
    except openai.NotFoundError:
        return set()
    return {kb["id"] for kb in listing["data"]}


async def run_compare(
    client: AsyncOpenAI,
    questions: list[Question],
    config: CompareConfig,
    judge_client: AsyncOpenAI | None = None,
    progress: Progress | None = None,
    bar: bool = False,
) -> CompareResult:
    """Ask every question of every arm and score the answers; ``judge_client`` defaults to ``client``."""
    if not questions:
        raise CompareError("no questions to ask")
    arms = await validate_arms(client, config.arms)
    judge = Judge(judge_client or client, config.judge_model) if config.judge_model else None
    started, clock = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
    slots = asyncio.Semaphore(config.concurrency)
    work = [(question, arm) for question in questions for arm in arms]
    done = 0

    async def one(question: Question, arm: Arm) -> Answer:
        nonlocal done
        async with slots:
            answer = await ask(client, question, arm, config, judge)
        done += 1
        if progress is not None:
            progress(done, len(work))
        meter.update()
        return answer

    with tqdm(total=len(work), desc="compare", unit="answer", disable=not bar) as meter:
        answers = await asyncio.gather(*(one(question, arm) for question, arm in work))
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    return CompareResult(config, list(questions), list(answers), started, finished, time.perf_counter() - clock)


async def ask(client: AsyncOpenAI, question: Question, arm: Arm, config: CompareConfig, judge: Judge | None) -> Answer:
    """One arm's scored answer to one question; a failed request becomes the answer's ``error``."""
    answer = Answer(question.id, arm.name)
    messages = [{"role": "system", "content": config.system}] if config.system else []
    messages.append({"role": "user", "content": question.question})
    start = time.perf_counter()
    try:
        response = await client.chat.completions.create(
            model=arm.name, messages=messages, max_tokens=config.max_tokens, temperature=config.temperature
        )
        answer.latency_s = time.perf_counter() - start
        choice = response.choices[0]
        answer.text, answer.finish_reason = choice.message.content or "", choice.finish_reason
        answer.completion_tokens = response.usage.completion_tokens if response.usage else None
        answer.citations = (response.model_extra or {}).get("citations")
        if arm.kb is not None:
            answer.sources = await search(client, arm.kb, question.question)
    except Exception as e:  # recorded for this question and arm; the run goes on
        answer.error = f"{type(e).__name__}: {e}"
        return answer
    answer.scores = dict(score(answer.text, question.answer))
    if answer.sources is not None:
        answer.scores["source_recall"] = answer_in_sources(question.answer, answer.sources)
    if judge is not None:
        verdict = await judge.verdict(question.question, question.answer, answer.text)
        answer.scores["judge"], answer.judge_raw = verdict.score, verdict.raw
    return answer


async def search(client: AsyncOpenAI, kb: str, query: str) -> list[str]:
    """The text of the chunks a RAG chat on ``kb`` retrieves for ``query`` (the server's default options)."""
    hits = await client.post(f"/knowledge_bases/{kb}/search", body={"query": query}, cast_to=object)
    return [hit["text"] for hit in hits["data"]]
