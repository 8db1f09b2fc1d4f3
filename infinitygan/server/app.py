"""The app factory: routers, middleware, error handlers and a lifespan.

The lifespan starts loading the checkpoint in the background, so the server answers `/healthz`
at once and `/readyz` with 503 until the model is loaded and warmed; tile requests before that
get 503 + `Retry-After` too. Shutdown (uvicorn drains requests on SIGTERM first) cancels
prefetch jobs, lets the batch in progress finish, then closes Redis and the encoder pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from infinitygan.model.canvas import CanvasRenderer, Rect
from infinitygan.model.checkpoint import load_generator

from .body_limits import RequestBodyLimits
from .cors import CorsMiddleware
from .demand import Demand, Priority
from .error_handlers import install_error_handlers
from .fastpath import TileFastPath
from .metrics import MetricsMiddleware
from .prefetch import PrefetchManager
from .render_queue import RenderQueue
from .routes import health, prefetch, tilejson, tiles, viewer
from .service import TileService, split_metatile
from .settings import Settings
from .state import STATIC_DIR, Loaded, ServerState
from .tiling import TILE_SIZE

log = logging.getLogger(__name__)
_STOP_TIMEOUT_S = 30.0


def _failed(state: ServerState, message: str) -> None:
    """Stay up and say why in /readyz (503), rather than crash-looping under an orchestrator."""
    state.load_error = message
    log.error(message)


async def _load(state: ServerState) -> None:
    settings = state.settings
    try:
        ckpt = await asyncio.to_thread(load_generator, settings.checkpoint, settings.device)
    except Exception as exc:
        _failed(state, f"cannot load the checkpoint: {exc}")
        return
    queue = RenderQueue(
        CanvasRenderer(ckpt.generator),
        state.metrics,
        {
            Priority.INTERACTIVE: settings.queue_interactive,
            Priority.PREFETCH: settings.queue_prefetch,
        },
        settings.batch_max,
        settings.retry_after_s,
    )
    queue.start()
    try:
        if settings.warmup:  # first-call allocations happen here, not in a user's request
            size = TILE_SIZE * settings.metatile
            image = await queue.render(0, Rect(0, 0, size, size), Demand(Priority.INTERACTIVE, 1))
            await state.codec.encode_many(split_metatile(image, settings.metatile)[:1])
    except BaseException as exc:
        queue.stop(timeout=0)  # the daemon worker exits after the batch it may be running
        if not isinstance(exc, Exception):
            raise
        _failed(state, f"the warm-up render failed: {type(exc).__name__}: {exc}")
        return
    service = TileService(
        ckpt.version,
        state.grid,
        state.cache,
        queue,
        state.codec,
        state.metrics,
        lock_ttl_s=settings.render_timeout_s,
    )
    state.loaded = Loaded(ckpt, queue, service, PrefetchManager(service, settings, state.metrics))
    log.info(
        "serving checkpoint %s (version %s) on %s",
        ckpt.path,
        ckpt.version,
        next(ckpt.generator.parameters()).device,
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.server
    loader = asyncio.create_task(_load(state), name="load-checkpoint")
    try:
        yield
    finally:
        loader.cancel()
        await asyncio.gather(loader, return_exceptions=True)
        loaded, state.loaded = state.loaded, None
        if loaded is not None:
            await loaded.prefetch.close()
            loaded.service.cancel_all()
            await asyncio.to_thread(loaded.queue.stop, _STOP_TIMEOUT_S)
        state.codec.close()
        await state.cache.close()


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="infinitygan tile server",
        summary="An infinite, seamless GAN-generated landscape as XYZ map tiles",
        lifespan=_lifespan,
        # Our own Prometheus metrics instead; the OpenTelemetry probe costs ~30 us per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    state = ServerState(settings)
    app.state.server = state
    install_error_handlers(app)
    for module in (tiles, tilejson, prefetch, health, viewer):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Outermost last: metrics -> CORS -> body limits -> tile fast path -> FastAPI's routing.
    app.add_middleware(TileFastPath, state=state)
    app.add_middleware(RequestBodyLimits, settings=settings)
    app.add_middleware(CorsMiddleware, origins=settings.cors_origins)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
