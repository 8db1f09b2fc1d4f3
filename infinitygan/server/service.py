"""From a tile address to PNG bytes: cache tiers, metatile renders, the zoom-out pyramid.

Native tiles come from aligned metatiles: one forward pass of M*256 px, sliced, each slice
encoded and cached. Concurrent misses for the same metatile share one flight in process and one
Redis `SET NX PX` lock across replicas; whoever waits on another replica's lock polls the cache,
and whoever gets the lock re-checks the cache first (MapProxy's `is_cached` inside the lock).

A zoomed-out tile is `downsample_2x` of its four children, fetched (recursively) from the cache
where they exist, so it is always the exact average of what the next zoom serves.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from infinitygan.model.canvas import Rect, downsample_2x

from .cache import RedisTier, TileCache
from .encode import PngCodec
from .errors import Dropped, RenderTimeout
from .metrics import Metrics
from .render_queue import Demand, Priority, RenderQueue, SingleFlight
from .tiling import TILE_SIZE, Metatile, TileAddress, TileGrid, content_key


@dataclass(frozen=True)
class TileData:
    png: bytes
    pixels: np.ndarray | None = None  # uint8 [256, 256, 3] when it was just rendered


class TileService:
    def __init__(
        self,
        version: str,
        grid: TileGrid,
        cache: TileCache,
        queue: RenderQueue,
        codec: PngCodec,
        metrics: Metrics,
        lock_ttl_s: float,
    ) -> None:
        self.version = version
        self.grid = grid
        self.cache = cache
        self.queue = queue
        self.codec = codec
        self.metrics = metrics
        self.lock_ttl_s = lock_ttl_s
        self._metatiles: SingleFlight[Metatile, dict[TileAddress, TileData]] = SingleFlight(
            metrics,
            on_abandon=lambda _, demand: queue.discard(demand),
            on_promote=lambda _, demand: queue.promote(demand),
        )
        self._zoomed: SingleFlight[TileAddress, TileData] = SingleFlight(
            metrics,
            on_abandon=lambda task, _: task.cancel(),
            on_promote=lambda addr, demand: self._promote_children(addr, demand.priority),
        )

    def key(self, addr: TileAddress, fmt: str = "png") -> str:
        return content_key(self.version, addr, fmt)

    async def cached(self, addr: TileAddress) -> bytes | None:
        return await self.cache.get(self.key(addr))

    async def produce(self, addr: TileAddress, priority: Priority) -> bytes:
        """PNG bytes of a tile that was a cache miss a moment ago (renders if still missing)."""
        return (await self._tile(addr, priority)).png

    async def prefetch_metatile(self, meta: Metatile, wanted: Sequence[TileAddress]) -> bool:
        """Make `wanted` tiles of one metatile cached; False when all already were."""
        if _all_present(await self.cache.get_many([self.key(a) for a in wanted])) is not None:
            return False
        await self._metatiles.run(meta, Priority.PREFETCH, lambda d: self._render_metatile(meta, d))
        return True

    async def prefetch_tile(self, addr: TileAddress) -> bool:
        if await self.cached(addr) is not None:
            return False
        await self._tile(addr, Priority.PREFETCH)
        return True

    def cancel_all(self) -> None:
        self._metatiles.cancel_all()
        self._zoomed.cancel_all()

    async def _tile(self, addr: TileAddress, priority: Priority) -> TileData:
        if addr.z == self.grid.maxzoom:
            meta = self.grid.metatile_of(addr)
            tiles = await self._metatiles.run(
                meta, priority, lambda d: self._render_metatile(meta, d)
            )
            return tiles[addr]
        return await self._zoomed.run(addr, priority, lambda d: self._build_zoomed(addr, d))

    def _promote_children(self, addr: TileAddress, priority: Priority) -> None:
        """A zoomed-out tile became interactive: so does the work building its children (a
        prefetch job may have started it), down to the metatiles in the render queue."""
        for child in self.grid.children(addr):
            if child.z == self.grid.maxzoom:
                self._metatiles.promote(self.grid.metatile_of(child), priority)
            else:
                self._zoomed.promote(child, priority)

    async def _pixels(self, addr: TileAddress, demand: Demand) -> np.ndarray:
        png = await self.cached(addr)
        if png is None:
            # The priority is read after the cache lookup: the parent may have been promoted.
            data = await self._tile(addr, demand.priority)
            if data.pixels is not None:
                return data.pixels
            png = data.png
        return await self.codec.decode(png)

    async def _build_zoomed(self, addr: TileAddress, demand: Demand) -> TileData:
        tl, tr, bl, br = await asyncio.gather(
            *(self._pixels(c, demand) for c in self.grid.children(addr))
        )
        quad = np.concatenate(
            [np.concatenate([tl, tr], axis=1), np.concatenate([bl, br], axis=1)], axis=0
        )  # [512, 512, 3]
        pixels = downsample_2x(quad)  # [256, 256, 3]
        (png,) = await self.codec.encode_many([pixels])
        await self.cache.put_many({self.key(addr): png})
        return TileData(png, pixels)

    async def _render_metatile(self, meta: Metatile, demand: Demand) -> dict[TileAddress, TileData]:
        tiles = self.grid.metatile_tiles(meta)
        keys = [self.key(t) for t in tiles]
        redis = self.cache.redis
        lock = self.grid.lock_name(self.version, meta)
        token = uuid.uuid4().hex
        owned = False
        if redis is not None:
            owned, found = await self._lock_or_wait(redis, lock, token, keys, demand)
            if found is not None:
                return dict(zip(tiles, map(TileData, found), strict=True))
        try:
            # The re-check: another request or replica may have just cached this metatile.
            cached = _all_present(await self.cache.get_many(keys))
            if cached is not None:
                return dict(zip(tiles, map(TileData, cached), strict=True))
            box = self.grid.metatile_box(meta)
            image = await self.queue.render(
                meta.seed, Rect(box.x, box.y, box.size, box.size), demand
            )
            arrays = split_metatile(image, self.grid.metatile)
            pngs = await self.codec.encode_many(arrays)
            await self.cache.put_many(dict(zip(keys, pngs, strict=True)))
            return {t: TileData(p, a) for t, p, a in zip(tiles, pngs, arrays, strict=True)}
        finally:
            if owned:
                assert redis is not None
                await redis.release(lock, token)

    async def _lock_or_wait(
        self, redis: RedisTier, lock: str, token: str, keys: list[str], demand: Demand
    ) -> tuple[bool, list[bytes] | None]:
        """Own the metatile's Redis lock, or wait for the replica that owns it to cache it.

        Returns (owned, tiles found while waiting). Redis being down means render unlocked.
        """
        deadline = time.monotonic() + self.lock_ttl_s
        waited = False
        while True:
            got = await redis.acquire(lock, token, int(self.lock_ttl_s * 1000))
            if got is None or got:
                return bool(got), None
            if not waited:
                self.metrics.lock_waits.inc()
                waited = True
            delay = 0.01
            while True:
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.2)
                found = _all_present(await self.cache.get_many(keys))
                if found is not None:
                    return False, found
                if demand.waiters <= 0:
                    raise Dropped("nobody waits for this metatile any more")
                if time.monotonic() > deadline:
                    raise RenderTimeout("another replica holds this metatile's render lock")
                if not await redis.held(lock):
                    break  # released or expired without every tile cached: try to take it


def _all_present(values: list[bytes | None]) -> list[bytes] | None:
    found = [v for v in values if v is not None]
    return found if len(found) == len(values) else None


def split_metatile(image: np.ndarray, m: int) -> list[np.ndarray]:
    """uint8 [M*256, M*256, 3] -> M*M tiles, row-major (matches TileGrid.metatile_tiles)."""
    assert image.shape == (m * TILE_SIZE, m * TILE_SIZE, 3), image.shape
    s = TILE_SIZE
    return [image[j * s : (j + 1) * s, i * s : (i + 1) * s] for j in range(m) for i in range(m)]
