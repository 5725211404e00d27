"""``/v1/compare``: start a comparison inside the gateway, follow it, cancel it, fetch its report.

Routes are thin: the work is in :class:`gateway.compare.service.CompareService`, which the app
creates; the models are in :mod:`gateway.compare.protocol`. Any valid API key may start a run;
a run is seen, cancelled and read only by the key that started it, and by admin keys. This
module knows nothing about scoring or how a run goes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from gateway.api.auth import principal_of
from gateway.api.objects import new_id, now
from gateway.compare.protocol import CompareRequest, CompareRun, CompareRunList
from gateway.compare.service import MEDIA_TYPES, CompareService


async def compare_service(request: Request) -> CompareService:
    return request.app.state.gateway.compare


def viewer(request: Request) -> str | None:
    """Whose runs the caller sees: its key's (None: an admin, who sees every run)."""
    principal = principal_of(request)
    return None if principal.admin else principal.name


Service = Annotated[CompareService, Depends(compare_service)]
router = APIRouter(tags=["compare"])


@router.post("/compare", status_code=202)
async def start_compare(body: CompareRequest, request: Request, service: Service) -> CompareRun:
    """Start running every question through every arm; follow it with GET /v1/compare/{id}."""
    header = request.headers.get("authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    return await service.start(body, key, new_id("cmp"), now(), owner=principal_of(request).name)


@router.get("/compare")
async def list_runs(service: Service, request: Request) -> CompareRunList:
    """Every run of the caller's key (every run for an admin key), newest first."""
    return CompareRunList(data=service.listing(viewer(request)))


@router.get("/compare/{run_id}")
async def get_run(run_id: str, service: Service, request: Request) -> CompareRun:
    return service.get(run_id, viewer(request))


@router.post("/compare/{run_id}/cancel")
async def cancel_run(run_id: str, service: Service, request: Request) -> CompareRun:
    """Stop a running run: its chat requests are cancelled and it is kept as ``cancelled``, without a report."""
    return await service.cancel(run_id, viewer(request))


@router.get("/compare/{run_id}/{name}")
async def get_report_file(run_id: str, name: str, service: Service, request: Request) -> FileResponse:
    """report.html, report.md, report.json or chart.png of a completed run."""
    return FileResponse(service.report_file(run_id, name, viewer(request)), media_type=MEDIA_TYPES[name])
