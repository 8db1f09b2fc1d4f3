"""Liveness, readiness (503 until the model is loaded and warmed) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..state import server_state

router = APIRouter(tags=["operations"])
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz", summary="Liveness")
@router.head("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz", summary="Readiness: 503 until warmed")
@router.head("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    state = server_state(request)
    loaded = state.require()
    redis = state.cache.redis
    return JSONResponse(
        {
            "status": "ready",
            "checkpoint_version": loaded.service.version,
            "redis": "disabled" if redis is None else ("up" if redis.available else "down"),
        },
        headers=NO_STORE,
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    registry = server_state(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
