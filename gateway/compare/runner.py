"""The A/B runner: every question through every arm of an OpenAI-compatible lorag API, scored.

An arm is a model name as a client would send it: the base model, an adapter, or
``<base-or-adapter>@<kb>`` (retrieval from knowledge base ``kb``). :func:`validate_arms` asks
the server to resolve each (``GET /v1/models/{name}``, whose card names the knowledge base of a
retrieval arm) before any question is asked, so the gateway's parser of model names is the only
one. :func:`run_compare` then sends each question as one user turn (after an optional system
prompt) to each arm through ``/v1/chat/completions``, at most ``concurrency`` at a time, and
records the answer, latency, completion tokens and the ``citations`` extension field. For a
``@kb`` arm it also asks ``POST /v1/knowledge_bases/{kb}/search`` for the same question with
the server's default options, which are the chat's, to see whether the retrieved chunks hold the
reference answer. A failed request is recorded as that answer's error; the run goes on. With a
judge, each answer also gets a 0/1 verdict (:mod:`gateway.compare.judge`).

It works with any :class:`openai.AsyncOpenAI` client: one pointed at a running server, at a
gateway started in process, or at the app itself through ``httpx.ASGITransport``. This module
knows nothing about statistics or report files (:mod:`gateway.compare.summary`,
:mod:`gateway.compare.report`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime

import openai
from openai import AsyncOpenAI
from tqdm import tqdm

from gateway.compare.judge import Judge, parse_verdict
from gateway.compare.scoring import answer_in_sources, score
from gateway.data.questions import Question

Progress = Callable[[int, int], None]  # (done, total) after each answer
LISTED_MODELS = 12  # model names an unknown-judge error shows at most
RATE_LIMIT_RETRIES = 120  # times a question refused with 429 (server busy) is asked again
MAX_RETRY_AFTER_S = 30.0


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
    reward_model: str | None = None  # a reward model (method: reward) that scores every answer; None: none
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
    prompt_tokens: int | None = None  # as the response's usage says: for a @kb arm, with the sources
    completion_tokens: int | None = None
    finish_reason: str | None = None
    citations: list[dict] | None = None  # the response's `citations` extension field, as sent
    sources: list[str] | None = None  # @kb arms: the text of the chunks a search for the question returns
    sources_error: str | None = None  # @kb arms: why that search failed (then source_recall is None: unknown)
    scores: dict[str, float | None] = field(default_factory=dict)  # f1, rouge_l, ... judge, reward
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

    @classmethod
    def from_dict(cls, data: dict) -> CompareResult:
        """The result a report.json holds (:func:`gateway.compare.report.build`); missing fields take defaults."""
        if not isinstance(data, dict) or data.get("object") != "compare.report":
            raise CompareError('not a lorag compare report.json (no "object": "compare.report")')
        try:
            return cls(
                CompareConfig(**_known(CompareConfig, data["config"])),
                [Question(**_known(Question, q)) for q in data["questions"]],
                [Answer(**_known(Answer, a)) for a in data["answers"]],
                data["started"], data["finished"], data["duration_s"],
            )  # fmt: skip
        except (KeyError, TypeError) as e:
            raise CompareError(f"not a complete lorag compare report.json ({type(e).__name__}: {e})") from None


def _known(kind: type, values: dict) -> dict:
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in values.items() if key in names}


def parse_arms(text: str) -> list[str]:
    """``"base, adapter,base@kb"`` -> ``["base", "adapter", "base@kb"]``."""
    return [arm.strip() for arm in text.split(",") if arm.strip()]


async def validate_arms(client: AsyncOpenAI, names: list[str]) -> list[Arm]:
    """Every arm as the server resolves it (``GET /models/{name}``: the gateway's own parser of model names);
    :class:`CompareError` naming the first one it does not serve."""
    arms = []
    for name in names:
        try:
            card = await client.models.retrieve(name)
        except openai.NotFoundError:
            models = {model.id async for model in client.models.list()}
            kbs = await knowledge_bases(client)
            plain = sorted(m for m in models if "@" not in m)
            raise CompareError(
                f"unknown arm '{name}': use one of the models {', '.join(plain)}, or '<model>@<kb>' "
                f"with a knowledge base from {', '.join(sorted(kbs)) or '(none on this server)'}"
            ) from None
        extra = card.model_extra or {}
        kb = extra.get("knowledge_base")
        arms.append(Arm(name, extra["parent"], kb) if kb else Arm(name, name))
    return arms


async def validate_judge(client: AsyncOpenAI, model: str, where: str, echo: bool = True) -> None:
    """:class:`CompareError` unless ``GET /models`` at the judge's endpoint lists ``model`` (``where`` names it).

    ``echo=False`` (an endpoint the caller does not own): the error says what failed, never what the endpoint
    answered, so the check cannot be used to read another server's responses."""
    try:
        models = {listed.id async for listed in client.models.list()}
    except openai.AuthenticationError:
        raise CompareError(f"the judge endpoint {where} refused its API key") from None
    except openai.APIError as e:
        status = getattr(e, "status_code", None)
        reason = " ".join(str(e).split()) if echo else f"status {status}" if status else type(e).__name__
        raise CompareError(f"cannot list the models of the judge endpoint {where}: {reason}") from None
    if model not in models:
        names = sorted(models)
        shown = ", ".join(names[:LISTED_MODELS]) + (", ..." if len(names) > LISTED_MODELS else "")
        listing = f": use one of {shown or '(none listed)'}" if echo else ""
        raise CompareError(f"unknown judge model '{model}' at {where}{listing}")


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
    judge = None
    if config.judge_model:
        judge = Judge(judge_client or client, config.judge_model)
        await validate_judge(judge.client, config.judge_model, config.judge_base_url or "the gateway being compared")
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
    """One arm's scored answer to one question; a failed chat request becomes the answer's ``error``, a failed
    search (``@kb`` arms) its ``sources_error``."""
    answer = Answer(question.id, arm.name)
    messages = [{"role": "system", "content": config.system}] if config.system else []
    messages.append({"role": "user", "content": question.question})
    try:
        response, answer.latency_s = await _chat(client, arm, messages, config)
        choice = response.choices[0]
        answer.text, answer.finish_reason = choice.message.content or "", choice.finish_reason
        if (usage := response.usage) is not None:
            answer.prompt_tokens, answer.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        answer.citations = (response.model_extra or {}).get("citations")
    except Exception as e:  # recorded for this question and arm; the run goes on
        answer.error = f"{type(e).__name__}: {e}"
        return answer
    if arm.kb is not None:
        try:
            answer.sources = await search(client, arm.kb, question.question)
        except Exception as e:  # the answer stands; only whether its sources hold the reference is unknown
            answer.sources_error = f"{type(e).__name__}: {e}"
    answer.scores = scores_of(answer, question)
    if judge is not None:
        verdict = await judge.verdict(question.question, question.answer, answer.text)
        answer.scores["judge"], answer.judge_raw = verdict.score, verdict.raw
    return answer


async def _chat(client: AsyncOpenAI, arm: Arm, messages: list[dict], config: CompareConfig):
    """The chat completion and its latency. While the gateway answers 429 (it is serving its most
    requests at once), the question waits for the Retry-After it asks and is sent again: a compare
    run takes its turn with the server's other clients instead of recording the refusals."""
    refusals = 0
    while True:
        start = time.perf_counter()
        try:
            response = await client.chat.completions.create(
                model=arm.name, messages=messages, max_tokens=config.max_tokens, temperature=config.temperature
            )
            return response, time.perf_counter() - start
        except openai.RateLimitError as e:
            refusals += 1
            if refusals > RATE_LIMIT_RETRIES:
                raise
            await asyncio.sleep(_retry_after(e.response))


def _retry_after(response) -> float:
    try:
        return min(float(response.headers.get("retry-after", 1)), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def scores_of(answer: Answer, question: Question) -> dict[str, float | None]:
    """The metrics of an answer that came back; ``source_recall`` for a ``@kb`` arm (None when its search failed)."""
    scores: dict[str, float | None] = dict(score(answer.text, question.answer))
    if answer.sources is not None:
        scores["source_recall"] = answer_in_sources(question.answer, answer.sources)
    elif answer.sources_error is not None:
        scores["source_recall"] = None
    return scores


def rescore(result: CompareResult) -> CompareResult:
    """``result`` with every answer scored again by the current :mod:`gateway.compare.scoring` (and the judge's recorded
    replies read again by :func:`gateway.compare.judge.parse_verdict`); no model is asked anything."""
    questions = {question.id: question for question in result.questions}
    answers = []
    for answer in result.answers:
        if answer.error is None:
            scores = scores_of(answer, questions[answer.question_id])
            if result.config.judge_model is not None and answer.judge_raw is not None:
                scores["judge"] = parse_verdict(answer.judge_raw)
            scores |= {k: answer.scores[k] for k in ("reward",) if k in answer.scores}  # a model's score, kept
            answer = replace(answer, scores=scores)
        answers.append(answer)
    return replace(result, answers=answers)


async def search(client: AsyncOpenAI, kb: str, query: str) -> list[str]:
    """The text of the chunks a RAG chat on ``kb`` retrieves for ``query`` (the server's default options)."""
    hits = await client.post(f"/knowledge_bases/{kb}/search", body={"query": query}, cast_to=object)
    return [hit["text"] for hit in hits["data"]]
