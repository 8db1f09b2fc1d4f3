"""The app factory: routers, middleware, error handlers and a lifespan.

`infinitygan serve` loads the checkpoint with `load_checkpoint` before it binds a port, and exits
on a bad one; it hands the loaded checkpoint to `create_app`. Given none (tests, embedding), the
lifespan loads it in the background and reports a failure in `/readyz`. Either way the warm-up
render runs in the background, so the server answers `/healthz` at once and `/readyz` with 503
until the model is loaded and warmed; tile requests before that get 503 + `Retry-After` too.
Shutdown (uvicorn drains requests on SIGTERM first) cancels prefetch jobs, lets the batch in
progress finish, then closes Redis and the encoder pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from infinitygan.malloc_tuning import keep_render_memory
from infinitygan.model.canvas import CanvasRenderer, Rect
from infinitygan.model.checkpoint import CheckpointError, LoadedCheckpoint, load_generator

from .body_limits import RequestBodyLimits
from .cors import CorsMiddleware, CorsPolicy
from .demand import Demand, Priority
from .encode import served_encodings
from .error_handlers import install_error_handlers
from .fastpath import TileServerApp
from .metrics import MetricsMiddleware
from .prefetch import PrefetchJobs, PrefetchManager
from .prefetch_streams import StreamPrefetchJobs
from .render_queue import RenderQueue
from .routes import health, prefetch, tilejson, tiles, viewer
from .service import TileService, split_metatile
from .settings import Settings
from .state import STATIC_DIR, Loaded, ServerState
from .tiling import TILE_SIZE

log = logging.getLogger(__name__)
_STOP_TIMEOUT_S = 30.0


def load_checkpoint(settings: Settings) -> LoadedCheckpoint:
    """Read, verify (file type and size, safetensors header, format, config, finite weights) and
    load the checkpoint to serve onto its device; a `CheckpointError` with a one-line message if
    any of that fails."""
    try:
        return load_generator(settings.checkpoint, settings.device, settings.checkpoint_max_bytes)
    except CheckpointError as exc:
        raise CheckpointError(_one_line(str(exc))) from exc
    except (RuntimeError, AssertionError) as exc:  # torch: an unusable device, out of memory
        raise CheckpointError(
            f"{settings.checkpoint}: cannot load onto device {settings.device!r}: "
            f"{_one_line(str(exc) or type(exc).__name__)}"
        ) from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _failed(state: ServerState, message: str) -> None:
    """Stay up and say why in /readyz (503), rather than crash-looping under an orchestrator."""
    state.load_error = message
    log.error(message)


async def _load(state: ServerState) -> None:
    settings = state.settings
    ckpt, state.preloaded = state.preloaded, None
    if ckpt is None:
        try:
            ckpt = await asyncio.to_thread(load_checkpoint, settings)
        except Exception as exc:
            _failed(state, f"cannot load the checkpoint: {exc}")
            return
    encodings = served_encodings(settings.webp_quality, settings.jpeg_quality)
    keep_render_memory()  # process-wide, before the model worker allocates anything
    world = settings.world
    queue = RenderQueue(
        CanvasRenderer(ckpt.generator, world),
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
            tile = split_metatile(image, settings.metatile)[0]
            await state.codec.encode_many([(e, tile) for e in encodings.values()])
    except BaseException as exc:
        queue.stop(timeout=0)  # the daemon worker exits after the batch it may be running
        if not isinstance(exc, Exception):
            raise
        _failed(state, f"the warm-up render failed: {type(exc).__name__}: {exc}")
        return
    # The world is part of every tile's pixels: the version that names cache keys, render
    # locks, ETags, the `?v=` of tile URLs and shared prefetch work is the checkpoint's and
    # the world's together.
    service = TileService(
        world.version(ckpt.version),
        state.grid,
        state.cache,
        queue,
        state.codec,
        state.metrics,
        lock_ttl_s=settings.render_timeout_s,
        encodings=encodings,
        advertised=settings.tile_format,
    )
    # With Redis, every replica shares the jobs and works on them; without, they live here.
    jobs: PrefetchJobs = (
        StreamPrefetchJobs(service, settings, state.metrics)
        if settings.redis_url
        else PrefetchManager(service, settings, state.metrics)
    )
    state.loaded = Loaded(ckpt, queue, service, jobs)
    log.info(
        "serving checkpoint %s (version %s) in world %s as version %s on %s",
        ckpt.path,
        ckpt.version,
        world.describe(),
        service.version,
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


def create_app(settings: Settings, checkpoint: LoadedCheckpoint | None = None) -> TileServerApp:
    """The app serving `settings`; `checkpoint`, if given, is `load_checkpoint(settings)`'s result
    (so a bad file was refused before anything listened); else the lifespan loads it."""
    app = TileServerApp(
        title="infinitygan tile server",
        summary="An infinite, seamless GAN-generated landscape as XYZ map tiles",
        lifespan=_lifespan,
        # Our own Prometheus metrics instead; the OpenTelemetry probe costs ~30 us per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    state = ServerState(settings, checkpoint)
    app.state.server = app.server = state
    app.cors = CorsPolicy(settings.cors_origins)
    install_error_handlers(app)
    for module in (tiles, tilejson, prefetch, health, viewer):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Outermost last: (tile fast path, in TileServerApp) -> metrics -> CORS -> body limits ->
    # FastAPI's routing.
    app.add_middleware(RequestBodyLimits, settings=settings)
    app.add_middleware(CorsMiddleware, policy=app.cors)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
