"""POST /prefetch -> 202 + job id; GET /prefetch/{id} progress; DELETE /prefetch/{id} cancels."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..prefetch import PrefetchJob, PrefetchRequest
from ..state import server_state

router = APIRouter(prefix="/prefetch", tags=["prefetch"])


def _progress(job: PrefetchJob, status: int = 200) -> JSONResponse:
    return JSONResponse(
        job.progress(),
        status_code=status,
        headers={"Cache-Control": "no-store", "Location": f"/prefetch/{job.id}"},
    )


@router.post("", status_code=202, summary="Start a prefetch job (tile bbox at maxzoom)")
async def create_job(request: Request, body: PrefetchRequest) -> JSONResponse:
    job = await server_state(request).require().prefetch.submit(body)
    return _progress(job, 202)


@router.get("/{job_id}", summary="Progress: done/total/skipped/failed, tiles per second, ETA")
async def get_job(request: Request, job_id: str) -> JSONResponse:
    return _progress(await server_state(request).require().prefetch.get(job_id))


@router.delete("/{job_id}", summary="Cancel a prefetch job")
async def cancel_job(request: Request, job_id: str) -> JSONResponse:
    return _progress(await server_state(request).require().prefetch.cancel(job_id))
