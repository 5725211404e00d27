"""Running and checking graders for the API: the ``graders`` package with the gateway's embedder and models.

A grader runs in a worker thread (a python grader waits there for its sandboxed child process), at most
``max_running`` at once. What the graders need from the gateway comes in as functions: ``embed``
(the default embedder of knowledge bases, for cosine similarity) and ``connect`` (an OpenAI client of the
gateway itself, with the caller's key, so a model grader's judge is any model this gateway serves, asked as
the caller would ask it). A judge elsewhere (the ``base_url`` extension) must be under a prefix the operator
allows (``LORAG_OUTBOUND_URLS``). Python graders run only when the operator allows them. This module knows
nothing about HTTP routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import openai
from openai import AsyncOpenAI

from gateway.compare.service import allowed_url
from gateway.errors import invalid
from graders import Context, GraderError, run_grader, validate_grader
from graders.judge import JudgeCall, JudgeFailed, JudgeReply, http_judge
from graders.sandbox import Limits

JUDGE_TIMEOUT_S = 300.0


class Grading:
    def __init__(
        self, embed: Callable[[list[str]], list[list[float]]], connect: Callable[[str | None], AsyncOpenAI],
        allow_python: bool = False, limits: Limits | None = None, outbound: tuple[str, ...] = (), max_running: int = 4,
    ):  # fmt: skip
        self.embed, self.connect, self.allow_python, self.limits = embed, connect, allow_python, limits or Limits()
        self.outbound = outbound
        self.slots = asyncio.Semaphore(max_running)

    def validate(self, grader: dict) -> dict:
        """The grader as checked (400 naming the field otherwise), in OpenAI's shape."""
        try:
            checked = validate_grader(grader, self.allow_python)
        except GraderError as e:
            raise invalid(e.param, str(e)) from None
        self._check_urls(grader)
        return checked.model_dump(exclude_none=True)

    async def run(self, grader: dict, model_sample: str, item: object, api_key: str | None) -> dict:
        """OpenAI's ``graders/run`` body: the reward, sub-rewards, metadata and judge tokens."""
        self.validate(grader)
        loop, client = asyncio.get_running_loop(), self.connect(api_key)

        def judge(call: JudgeCall) -> JudgeReply:
            if call.base_url:
                return http_judge(call.base_url)(call)
            return asyncio.run_coroutine_threadsafe(_ask(client, call), loop).result(JUDGE_TIMEOUT_S)

        context = Context(embed=self.embed, judge=judge, allow_python=self.allow_python, python_limits=self.limits)
        async with self.slots:
            try:
                result = await asyncio.to_thread(run_grader, grader, model_sample, item, context)
            except GraderError as e:
                raise invalid(e.param, str(e)) from None
        return result.openai()

    def _check_urls(self, grader: dict) -> None:
        inner = grader.get("graders") if grader.get("type") == "multi" else None
        found = [inner] if isinstance(inner, dict) and "type" in inner else list((inner or {}).values()) or [grader]
        for one in found:
            url = one.get("base_url") if isinstance(one, dict) else None
            if url and not allowed_url(url, self.outbound):
                raise invalid("grader.base_url", "this gateway calls no endpoint outside itself unless its operator "
                                                 "allows it (LORAG_OUTBOUND_URLS)")  # fmt: skip


async def _ask(client: AsyncOpenAI, call: JudgeCall) -> JudgeReply:
    """The judge's reply from a model this gateway serves, constrained to the grader's JSON schema."""
    response_format = {"type": "json_schema", "json_schema": {"name": "grade", "schema": call.schema, "strict": True}}
    try:
        reply = await client.chat.completions.create(
            model=call.model, messages=call.messages, response_format=response_format, **call.sampling
        )
    except openai.APIError as e:
        raise JudgeFailed(f"the judge model '{call.model}' could not answer: {e}") from None
    tokens = reply.usage.total_tokens if reply.usage else None
    return JudgeReply(reply.choices[0].message.content or "", tokens)
