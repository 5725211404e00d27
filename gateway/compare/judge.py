"""A judge model's 0/1 verdict on whether an answer is correct, from any OpenAI-compatible endpoint.

The judge sees the question, the reference answer and the candidate answer, with a strict
instruction to reply with the single digit 1 (correct) or 0 (incorrect), and is called at
temperature 0. :func:`parse_verdict` reads the reply leniently but never guesses: a leading
``1``/``0`` (also ``**1**``, ``Verdict: 0``), or a leading correct/incorrect, yes/no, true/false;
anything else is no verdict (None), recorded with the raw reply and left out of the judge's
mean. :meth:`Judge.reply` is the one call to a judge model, which :mod:`gateway.compare.ranking`
uses too. This module knows nothing about arms, reports or the gateway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openai import AsyncOpenAI

JUDGE_MAX_TOKENS = 8
PROMPT = """You are grading an answer to a question against the reference answer.
The answer is correct if it states the same fact as the reference (wording, extra detail and \
formatting do not matter); it is incorrect if it contradicts the reference, misses it, or \
refuses to answer.

Question: {question}
Reference answer: {reference}
Answer to grade: {answer}

Reply with exactly one character: 1 if the answer is correct, 0 if it is incorrect."""

_LEAD = re.compile(r"^\W*(?:(?:verdict|grade|score|answer)\s*[:=]?\s*)?\W*(\w+)", re.IGNORECASE)
_WORDS = {"1": 1.0, "0": 0.0, "correct": 1.0, "incorrect": 0.0, "yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0}


@dataclass(frozen=True)
class Verdict:
    """What the judge said about one answer."""

    score: float | None  # 1.0 correct, 0.0 incorrect, None: no verdict could be read
    raw: str  # the judge's reply as it came (or the error, when the request failed)


def parse_verdict(reply: str) -> float | None:
    """1.0, 0.0, or None when the reply does not start with a verdict."""
    match = _LEAD.match(reply.strip())
    return _WORDS.get(match.group(1).lower()) if match else None


class Judge:
    """Asks ``model`` at ``client`` for verdicts (and, through :class:`gateway.compare.ranking.Ranker`, rankings)."""

    def __init__(self, client: AsyncOpenAI, model: str):
        self.client, self.model = client, model

    async def reply(self, prompt: str, max_tokens: int, response_format: dict | None = None) -> str:
        """The judge's reply to ``prompt`` as one user turn, at temperature 0; a failed request raises."""
        extra = {"response_format": response_format} if response_format else {}
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0,
            max_tokens=max_tokens,
            **extra,
        )
        return response.choices[0].message.content or ""

    async def verdict(self, question: str, reference: str, answer: str) -> Verdict:
        prompt = PROMPT.format(question=question, reference=reference, answer=answer.strip() or "(no answer)")
        try:
            reply = await self.reply(prompt, JUDGE_MAX_TOKENS)
        except Exception as e:  # a failed judge call is no verdict for this answer, not a failed run
            return Verdict(None, f"error: {type(e).__name__}: {e}")
        return Verdict(parse_verdict(reply), reply)
