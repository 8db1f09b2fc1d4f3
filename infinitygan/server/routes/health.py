"""Liveness, readiness (503 until the model is loaded and warmed) and Prometheus metrics.

Readiness names the checkpoint's version and the served one (`version`, the `?v=` of tile URLs:
the checkpoint's with the world's tag), so a deployment can check what each replica serves. It
reports Redis as a short PING sees it ("up", "down", or "disabled" when unset); Redis down is
still 200: it is an optimisation (tiles are rendered instead), not a dependency.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..state import server_state

router = APIRouter(tags=["operations"])
NO_STORE = {"Cache-Control": "no-store"}
REDIS_PING_TIMEOUT_S = 0.25  # well inside an orchestrator's probe timeout (1-3 s)


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
    if redis is None:
        redis_status = "disabled"
    else:
        timeout = min(REDIS_PING_TIMEOUT_S, state.settings.redis_timeout_s)
        redis_status = "up" if await redis.ping(timeout) else "down"
    return JSONResponse(
        {
            "status": "ready",
            "checkpoint_version": loaded.checkpoint.version,
            "version": loaded.service.version,  # of tile URLs: the checkpoint's and the world's
            "redis": redis_status,
        },
        headers=NO_STORE,
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    registry = server_state(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
