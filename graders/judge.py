"""The model graders: ``score_model`` and ``label_model`` ask a judge model through OpenAI's chat API.

The grader's messages are rendered (``{{ item.* }}``, ``{{ sample.* }}``) and sent with a JSON schema as the
response format, so the judge's reply is JSON the grader can read: ``{"result": <number>}`` for a score
(within the grader's ``range``, ``[0, 1]`` by default), ``{"label": <one of labels>}`` for a label (reward 1
for a passing label, else 0). The call itself is a :data:`Judge` function the caller gives: the gateway asks
its own models (or an endpoint its operator allows), :func:`http_judge` any OpenAI-compatible URL. This module
knows nothing about servers or engines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JudgeCall:
    model: str
    messages: list[dict]
    schema: dict
    sampling: dict = field(default_factory=dict)  # OpenAI's chat fields: temperature, top_p, seed, max_tokens
    base_url: str | None = None  # lorag's extension: another OpenAI-compatible endpoint


@dataclass(frozen=True)
class JudgeReply:
    text: str
    tokens: int | None = None


class JudgeFailed(RuntimeError):
    """The judge could not be asked (unreachable, refused, unknown model); the message says why."""


Judge = Callable[[JudgeCall], JudgeReply]


class JudgeParseError(ValueError):
    """The judge answered, but not with what the grader asked for."""


def score_call(grader, messages: list[dict]) -> JudgeCall:
    params = grader.sampling_params
    sampling = {"temperature": 0.0}
    if params:
        sampling |= {k: v for k, v in (("temperature", params.temperature), ("top_p", params.top_p),
                                       ("seed", params.seed), ("max_tokens", params.max_completions_tokens))
                     if v is not None}  # fmt: skip
    schema = {"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"],
              "additionalProperties": False}  # fmt: skip
    return JudgeCall(grader.model, messages, schema, sampling, grader.base_url)


def label_call(grader, messages: list[dict]) -> JudgeCall:
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": list(grader.labels)}},
              "required": ["label"], "additionalProperties": False}  # fmt: skip
    return JudgeCall(grader.model, messages, schema, {"temperature": 0.0}, grader.base_url)


def read_score(grader, reply: JudgeReply) -> float:
    low, high = grader.range or (0.0, 1.0)
    value = _field(reply, "result")
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise JudgeParseError(f"the judge's result {value!r} is not a number from {low} to {high}")
    return float(value)


def read_label(grader, reply: JudgeReply) -> tuple[str, float]:
    label = _field(reply, "label")
    if label not in grader.labels:
        raise JudgeParseError(f"the judge's label {label!r} is not one of {grader.labels}")
    return label, 1.0 if label in grader.passing_labels else 0.0


def _field(reply: JudgeReply, name: str):
    try:
        return json.loads(reply.text)[name]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise JudgeParseError(f"the judge did not reply with JSON holding '{name}': {reply.text[:200]!r}") from None


def http_judge(base_url: str, api_key: str | None = None, timeout_s: float = 120.0) -> Judge:
    """A judge at an OpenAI-compatible ``base_url`` (``.../v1``), called with httpx."""
    import httpx

    def call(request: JudgeCall) -> JudgeReply:
        body = {"model": request.model, "messages": request.messages, **request.sampling,
                "response_format": {"type": "json_schema", "json_schema": {"name": "grade", "schema": request.schema,
                                                                           "strict": True}}}  # fmt: skip
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            response = httpx.post(f"{(request.base_url or base_url).rstrip('/')}/chat/completions", json=body,
                                  headers=headers, timeout=timeout_s)  # fmt: skip
        except httpx.HTTPError as e:
            raise JudgeFailed(f"the judge at {base_url} could not be reached: {e}") from None
        if response.status_code != 200:
            raise JudgeFailed(f"the judge answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        return JudgeReply(data["choices"][0]["message"].get("content") or "", data.get("usage", {}).get("total_tokens"))

    return call
