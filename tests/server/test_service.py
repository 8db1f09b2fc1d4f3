"""TileService with a fake model: priorities carry through the zoom-out pyramid."""

from __future__ import annotations

import asyncio
import math

import pytest

from infinitygan.model.canvas import Rect
from infinitygan.server.cache import TileCache
from infinitygan.server.demand import Demand, Priority
from infinitygan.server.encode import TileCodec, served_encodings
from infinitygan.server.errors import QueueFull
from infinitygan.server.metrics import Metrics
from infinitygan.server.render_queue import RenderQueue
from infinitygan.server.service import TileService
from infinitygan.server.settings import Settings
from infinitygan.server.tiling import TileAddress, TileGrid
from tests.server.gated_model import GatedModel, wait_until


def test_interactive_request_promotes_a_zoomed_out_tile_that_a_prefetch_is_building() -> None:
    """A viewer asks for a zoomed-out tile whose children a prefetch job has queued behind other
    prefetch work: those children jump to the interactive queue instead of waiting their turn."""
    model = GatedModel()
    service, queue, codec = _service(model, limit=8, batch=4)
    zoomed = TileAddress(seed=1, z=1, x=0, y=0)  # built from four native metatiles of seed 1

    async def scenario() -> bytes:
        blocker = asyncio.ensure_future(
            queue.render(99, Rect(0, 0, 256, 256), Demand(Priority.PREFETCH, 1))
        )
        await wait_until(model.entered.is_set)
        earlier = [
            asyncio.ensure_future(
                queue.render(seed, Rect(0, 0, 256, 256), Demand(Priority.PREFETCH, 1))
            )
            for seed in (50, 51, 52)
        ]
        prefetch = asyncio.ensure_future(service.prefetch_tile(zoomed))
        await wait_until(lambda: queue.depth(Priority.PREFETCH) == 7)
        viewer = asyncio.ensure_future(
            service.produce(zoomed, "png", Priority.INTERACTIVE, math.inf)
        )
        await wait_until(lambda: queue.depth(Priority.INTERACTIVE) == 4)
        assert queue.depth(Priority.PREFETCH) == 3  # only the unrelated prefetch work is left
        model.gate.set()
        await asyncio.gather(blocker, *earlier, prefetch)
        return await viewer

    try:
        png = asyncio.run(scenario())
    finally:
        queue.stop(5)
        codec.close()
    assert png.startswith(b"\x89PNG")
    assert model.batches == [[99], [1, 1, 1, 1], [50, 51, 52]]


def _service(
    model: GatedModel, limit: int, batch: int = 1
) -> tuple[TileService, RenderQueue, TileCodec]:
    """Native zoom 2, one tile per metatile, `limit` slots per queue, `batch` jobs per batch."""
    metrics = Metrics()
    queue = RenderQueue(model, metrics, {p: limit for p in Priority}, batch, 1)
    queue.start()
    codec = TileCodec(1, metrics)
    grid = TileGrid(minzoom=0, maxzoom=2, metatile=1)
    cache = TileCache(Settings(redis_url=None, warmup=False), metrics)
    service = TileService(
        "v", grid, cache, queue, codec, metrics, 10, served_encodings(85, 85), "webp"
    )
    return service, queue, codec


def test_a_zoomed_out_tile_that_cannot_fit_is_refused_before_queueing_anything() -> None:
    model = GatedModel()
    model.gate.set()
    service, queue, codec = _service(model, limit=8)
    try:
        with pytest.raises(QueueFull):  # zoom 0 needs all 16 native metatiles; 8 fit
            asyncio.run(
                service.produce(TileAddress(1, 0, 0, 0), "png", Priority.INTERACTIVE, math.inf)
            )
        asyncio.run(asyncio.sleep(0.05))
        assert model.batches == [] and queue.depth(Priority.INTERACTIVE) == 0
    finally:
        queue.stop(5)
        codec.close()


def test_a_failed_child_cancels_its_siblings() -> None:
    """The first of four children fails in the model: the children still queued are dropped
    (not rendered for nobody), and the zoomed-out tile fails with the child's error."""
    model = GatedModel(seconds_per_job=0.2, fail_x=0)
    model.gate.set()
    service, queue, codec = _service(model, limit=8)
    try:
        with pytest.raises(RuntimeError, match="x = 0"):
            asyncio.run(
                service.produce(TileAddress(1, 1, 0, 0), "png", Priority.INTERACTIVE, math.inf)
            )
        asyncio.run(asyncio.sleep(0.5))
        # (0, 0) failed; the worker may have taken (1, 0) before the cancellation reached it
        assert model.batches in ([[1]], [[1], [1]])
        assert queue.depth(Priority.INTERACTIVE) == 0
    finally:
        queue.stop(5)
        codec.close()
