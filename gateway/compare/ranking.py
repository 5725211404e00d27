"""A judge model's ranking of several answers to one prompt: which is best, which is worst, and why.

:class:`Ranker` shows the judge (:class:`gateway.compare.judge.Judge`, the one judge client) the
prompt and the answers, numbered from 1, and asks at temperature 0 for a JSON object
``{"best": n, "worst": m, "reason": "..."}`` as a ``json_schema`` response format whose numbers
can only be those of two different answers and whose reason is short: on a lorag-served judge
(and vLLM's) constrained decoding makes every reply a usable ranking. An endpoint that answers 400
to the response format is asked the same prompt again without it, and from then on in text only.
:func:`parse_ranking` reads a reply leniently but never guesses: the first JSON object in it, or
else ``best ... 2`` and ``worst ... 3`` written in words; a best and a worst that are not two
different answers' numbers is no ranking (None), which ``lorag pairs`` skips and counts. It is
used by ``lorag pairs`` (:mod:`gateway.data.pairs`, which is handed a ranker because the data
room may not import this one). This module knows nothing about sampling, files or the command line.
"""

from __future__ import annotations

import json
import re

import openai

from gateway.compare.judge import Judge
from gateway.data.pairs import Ranking

RANK_MAX_TOKENS = 256
REASON_MAX_CHARS = 300  # a small judge left free fills max_tokens with its reason, and the JSON is cut off
PREFER = "the most helpful, correct and honest"  # what "best" means unless the user says otherwise (--prefer)
PROMPT = """You are comparing {count} answers to the same prompt. Decide which answer is the best ({prefer}) \
and which is the worst.

Prompt:
{prompt}

{answers}

Reply with a JSON object: {{"best": <number of the best answer>, "worst": <number of the worst answer>, \
"reason": "<one short sentence saying why>"}}"""

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_WORDS = {key: re.compile(rf"\b{key}\b[^0-9\n]{{0,24}}?(\d+)", re.IGNORECASE) for key in ("best", "worst")}
_REASON = re.compile(r"\breason\b\W*(.+)", re.IGNORECASE)


def ranking_prompt(prompt: str, answers: list[str], prefer: str = PREFER) -> str:
    numbered = "\n\n".join(f"Answer {number}:\n{answer}" for number, answer in enumerate(answers, start=1))
    return PROMPT.format(count=len(answers), prompt=prompt, answers=numbered, prefer=prefer)


def ranking_format(count: int) -> dict:
    """The ``response_format`` whose replies name two different ones of ``count`` answers and say why briefly.

    One branch per best answer, each allowing only the others as worst: a JSON schema cannot say "differs
    from best" otherwise. Not ``strict`` (OpenAI's strict mode refuses ``anyOf`` at the root)."""
    reason = {"type": "string", "maxLength": REASON_MAX_CHARS}

    def branch(best: int) -> dict:
        worst = {"enum": [number for number in range(1, count + 1) if number != best]}
        return {
            "type": "object",
            "properties": {"best": {"const": best}, "worst": worst, "reason": reason},
            "required": ["best", "worst", "reason"],
            "additionalProperties": False,
        }

    schema = {"anyOf": [branch(best) for best in range(1, count + 1)]}
    return {"type": "json_schema", "json_schema": {"name": "ranking", "schema": schema}}


def parse_ranking(reply: str, count: int) -> Ranking:
    """The ranking in ``reply`` of ``count`` answers (0-based indices), or one with ``best`` None if there is none."""
    fields = _json_fields(reply) or _word_fields(reply)
    best, worst = _index(fields.get("best"), count), _index(fields.get("worst"), count)
    if best is None or worst is None or best == worst:
        return Ranking(None, None, "", reply)
    reason = fields.get("reason")
    return Ranking(best, worst, " ".join(reason.split()) if isinstance(reason, str) else "", reply)


class Ranker:
    """Ranks answers with ``judge``: a :data:`gateway.data.pairs.Rank`; ``structured=False`` asks in text only.

    ``prefer`` says what makes an answer the best, in words the prompt reads after "the best" (e.g. "the
    shortest answer that is still correct"): the principle an AI-feedback judge applies."""

    def __init__(self, judge: Judge, structured: bool = True, prefer: str | None = None):
        self.judge, self.structured, self.prefer = judge, structured, " ".join((prefer or PREFER).split())

    async def __call__(self, prompt: str, answers: list[str]) -> Ranking:
        text, response_format = ranking_prompt(prompt, answers, self.prefer), None
        if self.structured:
            response_format = ranking_format(len(answers))
        try:
            reply = await self.judge.reply(text, RANK_MAX_TOKENS, response_format)
        except openai.BadRequestError:
            if response_format is None:
                raise
            reply = await self.judge.reply(text, RANK_MAX_TOKENS)  # raises again if the prompt was what it refused
            self.structured = False  # the endpoint takes no JSON schema: ask in text from now on
        return parse_ranking(reply, len(answers))


def _json_fields(reply: str) -> dict:
    match = _OBJECT.search(reply)
    try:
        value = json.loads(match.group()) if match else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _word_fields(reply: str) -> dict:
    fields = {key: int(found.group(1)) for key, pattern in _WORDS.items() if (found := pattern.search(reply))}
    if reason := _REASON.search(reply):
        fields["reason"] = reason.group(1).strip(" \"'}")
    return fields


def _index(number: object, count: int) -> int | None:
    """The 0-based index of answer ``number`` (1-based; an int, or a string of digits), None if it is no answer's."""
    if isinstance(number, str) and number.strip().isdigit():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
        return None
    return number - 1
