"""Preference pairs from AI feedback (RLAIF): k sampled answers per prompt, ranked, kept as chosen/rejected.

``lorag pairs`` asks one model ``samples`` answers to each prompt through any OpenAI-compatible
``/chat/completions`` (one request with ``n``; again for the rest if an endpoint sends fewer
choices), each choice with its own seed. The distinct non-empty answers (compared after stripping
white space) go, in a seeded shuffled order so that a judge's preference for a position cannot pick
the same place every time, to a *ranker*: any async callable ``(prompt, answers) -> Ranking``
(:class:`gateway.compare.ranking.Ranker` asks a judge model). The best answer becomes
``chosen``, the worst ``rejected``, in rows ready for ``method: dpo``::

    {"prompt": ..., "chosen": ..., "rejected": ..., "reason": ..., "judge": ..., "samples": k}

A prompt gives no row, and is counted in :class:`PairsReport`, when its answers are all the
same, when the ranker's reply names no two different answers, or when a request failed; the run
goes on.
Prompts are worked on ``concurrency`` at a time, with a tqdm bar over them. This module knows
nothing about how a ranker decides (it is handed one; the data room may not import the judge
in ``gateway.compare``), about files or about the command line.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from openai import AsyncOpenAI
from tqdm import tqdm


@dataclass(frozen=True)
class Ranking:
    """A ranker's verdict on the answers it was shown: indices into them, None where its reply was unreadable."""

    best: int | None
    worst: int | None
    reason: str
    raw: str  # the reply as it came


Rank = Callable[[str, list[str]], Awaitable[Ranking]]


@dataclass(frozen=True)
class PairsConfig:
    """How answers are sampled."""

    model: str  # the model name sent to the sampling endpoint
    samples: int = 4  # k answers per prompt
    temperature: float = 0.8
    max_tokens: int = 256  # per answer
    seed: int = 0  # of the sampling (prompt i is asked with seed + i * samples) and of the shuffles
    concurrency: int = 4  # prompts in the works at once

    def __post_init__(self):
        if self.samples < 2:
            raise ValueError("a pair needs at least 2 samples per prompt")
        if self.concurrency < 1 or self.max_tokens < 1:
            raise ValueError("concurrency and max_tokens must be at least 1")


@dataclass
class PairsReport:
    """What happened to the prompts."""

    prompts: int = 0
    pairs: int = 0  # rows written
    identical: int = 0  # skipped: every sample the same
    unreadable: int = 0  # skipped: the ranker's reply named no distinct best and worst answer
    failed: int = 0  # skipped: a sampling or judge request failed
    first_error: str | None = None  # of the failed requests, the first

    def summary(self) -> str:
        text = (
            f"{self.pairs} of {self.prompts} prompts; skipped {self.identical} with identical samples, "
            f"{self.unreadable} with no distinct best and worst in the judge's reply, "
            f"{self.failed} with a failed request"
        )
        return text + (f" (first: {self.first_error})" if self.first_error else "")


async def build_pairs(
    client: AsyncOpenAI, prompts: list[str], config: PairsConfig, rank: Rank, judge: str, bar: bool = False
) -> tuple[list[dict], PairsReport]:
    """A row for each prompt whose answers the ranker told apart, in prompt order; ``judge`` names it in the rows."""
    report = PairsReport(prompts=len(prompts))
    slots = asyncio.Semaphore(config.concurrency)

    async def one(index: int, prompt: str) -> dict | None:
        async with slots:
            try:
                row = await _pair(client, index, prompt, config, rank, judge, report)
            except Exception as e:  # this prompt gives no pair; the run goes on
                report.failed += 1
                report.first_error = report.first_error or " ".join(f"{type(e).__name__}: {e}".split())
                row = None
        meter.update()
        return row

    with tqdm(total=len(prompts), desc="pairs", unit="prompt", disable=not bar) as meter:
        rows = await asyncio.gather(*(one(index, prompt) for index, prompt in enumerate(prompts)))
    kept = [row for row in rows if row is not None]
    report.pairs = len(kept)
    return kept, report


async def _pair(
    client: AsyncOpenAI, index: int, prompt: str, config: PairsConfig, rank: Rank, judge: str, report: PairsReport
) -> dict | None:
    answers = [a for a in dict.fromkeys(a.strip() for a in await sample(client, prompt, config, index)) if a]
    if len(answers) < 2:
        report.identical += 1
        return None
    random.Random(f"{config.seed}:{index}").shuffle(answers)
    ranking = await rank(prompt, answers)
    if ranking.best is None or ranking.worst is None:
        report.unreadable += 1
        return None
    return {
        "prompt": prompt, "chosen": answers[ranking.best], "rejected": answers[ranking.worst],
        "reason": ranking.reason, "judge": judge, "samples": config.samples,
    }  # fmt: skip


async def sample(client: AsyncOpenAI, prompt: str, config: PairsConfig, index: int) -> list[str]:
    """``config.samples`` answers to ``prompt`` (the ``index``-th prompt), asked with ``n`` and fresh seeds."""
    answers: list[str] = []
    while len(answers) < config.samples:
        response = await client.chat.completions.create(
            model=config.model,
            messages=[{"role": "user", "content": prompt}],
            n=config.samples - len(answers),
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=config.seed + index * config.samples + len(answers),
        )
        if not response.choices:
            raise RuntimeError("the sampling endpoint sent no choices")
        answers += [choice.message.content or "" for choice in response.choices]
    return answers[: config.samples]
