"""Routes of OpenAI's graders API: ``POST /v1/fine_tuning/alpha/graders/run`` and ``/validate``.

Any key may run and validate graders (a model grader's judge is asked with the caller's key). Routes are thin:
the work is in :class:`gateway.grading.service.Grading` (``app.state.grading``). This module knows nothing
about graders.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.grading.protocol import GraderRun, GraderValidate, GraderValidated

router = APIRouter(tags=["fine-tuning"])


@router.post("/fine_tuning/alpha/graders/run")
async def run_grader(body: GraderRun, request: Request) -> dict:
    """Grade one model sample: ``reward``, ``sub_rewards`` and OpenAI's ``metadata`` (errors, time, scores)."""
    header = request.headers.get("authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    return await request.app.state.grading.run(body.grader, body.model_sample, body.item, key)


@router.post("/fine_tuning/alpha/graders/validate")
async def validate_grader(body: GraderValidate, request: Request) -> GraderValidated:
    """Check a grader without running it; 400 naming the field that is wrong."""
    return GraderValidated(grader=request.app.state.grading.validate(body.grader))
