"""From a tile address to encoded bytes: cache tiers, metatile renders, the zoom-out pyramid.

Native tiles come from aligned metatiles: one forward pass of M*256 px, sliced, each slice
encoded (PNG and the advertised format) and cached, with the zoomed-out tiles that lie wholly
inside the metatile. Concurrent misses for the same metatile share one flight in process
(`single_flight`) and one render lock across replicas (`render_lock`); whoever gets the lock
re-checks the cache first (MapProxy's `is_cached` inside the lock).

A zoomed-out tile is `downsample_2x` of its four children's pixels, decoded from their cached
PNGs where they exist (built recursively where not), so in every format it is the exact average
of what the next zoom serves, never an average of another format's lossy bytes. Its missing
children are first admitted as a whole (the most metatiles they can cost must fit before the
request's deadline), and if one child fails the others are cancelled with it, so a refused
zoomed-out tile leaves no renders behind for nobody.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from infinitygan.model.canvas import Rect, downsample_2x

from .cache import TileCache
from .demand import Demand, Priority
from .encode import PNG, Encoding, TileCodec
from .metrics import Metrics
from .render_lock import RenderLock
from .render_queue import RenderQueue
from .single_flight import SingleFlight, cancel_abandoned
from .tiling import TILE_SIZE, Metatile, TileAddress, TileGrid, content_key

_REMEMBERED_KEYS = 1 << 15  # two formats of the fast path's remembered addresses


@dataclass(frozen=True)
class TileData:
    """A tile's stored encodings by format (PNG always) and its pixels when just built."""

    encoded: dict[str, bytes]
    pixels: np.ndarray | None = None  # uint8 [256, 256, 3]


MetatileTiles = dict[TileAddress, TileData]


class TileService:
    def __init__(
        self,
        version: str,
        grid: TileGrid,
        cache: TileCache,
        queue: RenderQueue,
        codec: TileCodec,
        metrics: Metrics,
        lock_ttl_s: float,
        encodings: Mapping[str, Encoding],
        advertised: str,
    ) -> None:
        self.version = version
        self.grid = grid
        self.cache = cache
        self.queue = queue
        self.codec = codec
        self.encodings = encodings  # every served format
        # Content keys by (address, format), as the fast path remembers addresses: building
        # one is a tenth of a cached tile's time. Forgotten all at once when full.
        self._keys: dict[tuple[TileAddress, str], str] = {}
        # What a render encodes and caches: the lossless master and the format TileJSON names,
        # so a viewer's requests are hits; other formats are encoded from PNG on first request.
        self.stored = tuple(dict.fromkeys((PNG.fmt, advertised)))
        self._lock = RenderLock(cache, metrics, lock_ttl_s)
        self._metatiles: SingleFlight[Metatile, MetatileTiles] = SingleFlight(
            self._render_metatile,
            metrics,
            on_abandon=self._unqueue_metatile,
            on_promote=self._promote_metatile,
        )
        self._zoomed: SingleFlight[TileAddress, TileData] = SingleFlight(
            self._build_zoomed,
            metrics,
            on_abandon=cancel_abandoned,
            on_promote=self._promote_children,
        )

    def key(self, addr: TileAddress, fmt: str) -> str:
        key = self._keys.get((addr, fmt))
        if key is None:
            if len(self._keys) >= _REMEMBERED_KEYS:
                self._keys.clear()
            key = self._keys[addr, fmt] = content_key(self.version, addr, self.encodings[fmt].tag)
        return key

    def stored_keys(self, addrs: Sequence[TileAddress]) -> list[str]:
        """Every stored encoding of each tile, tile by tile (what a render caches)."""
        return [self.key(a, f) for a in addrs for f in self.stored]

    async def produce(
        self, addr: TileAddress, fmt: str, priority: Priority, deadline: float
    ) -> bytes:
        """The bytes of a tile that was a cache miss a moment ago (renders if still missing);
        `deadline` (`time.monotonic()`) is when the caller stops waiting."""
        if fmt not in self.stored:  # a format renders don't make: encode it from the master
            png = await self.cache.get(self.key(addr, PNG.fmt))
            if png is not None:
                return await self._transcode(addr, fmt, TileData({PNG.fmt: png}))
        data = await self._tile(addr, priority, deadline)
        if fmt in data.encoded:
            return data.encoded[fmt]
        return await self._transcode(addr, fmt, data)

    async def prefetch_metatile(self, meta: Metatile, wanted: Sequence[TileAddress]) -> bool:
        """Make `wanted` tiles of one metatile cached; False when all already were."""
        if await self.cache.get_all(self.stored_keys(wanted)) is not None:
            return False
        await self._metatiles.run(meta, Priority.PREFETCH)
        return True

    async def prefetch_tile(self, addr: TileAddress) -> bool:
        if await self.cache.get_all(self.stored_keys([addr])) is not None:
            return False
        await self._tile(addr, Priority.PREFETCH)
        return True

    def cancel_all(self) -> None:
        self._metatiles.cancel_all()
        self._zoomed.cancel_all()

    async def _tile(
        self, addr: TileAddress, priority: Priority, deadline: float = math.inf
    ) -> TileData:
        if addr.z == self.grid.maxzoom:
            tiles = await self._metatiles.run(self.grid.metatile_of(addr), priority, deadline)
            return tiles[addr]
        return await self._zoomed.run(addr, priority, deadline)

    def _unqueue_metatile(self, _: asyncio.Task[MetatileTiles], demand: Demand) -> None:
        """Nobody waits for the metatile any more: its render leaves the queue if it has not
        started (one under way finishes, and its tiles are cached for the next request)."""
        self.queue.discard(demand)

    def _promote_metatile(self, _: Metatile, demand: Demand) -> None:
        """An interactive request joined a prefetch render: its job moves up the queue."""
        self.queue.promote(demand)

    def _promote_children(self, addr: TileAddress, demand: Demand) -> None:
        """A zoomed-out tile became interactive: so does the work building its children (a
        prefetch job may have started it), down to the metatiles in the render queue."""
        for child in self.grid.children(addr):
            if child.z == self.grid.maxzoom:
                self._metatiles.promote(self.grid.metatile_of(child), demand.priority)
            else:
                self._zoomed.promote(child, demand.priority)

    async def _transcode(self, addr: TileAddress, fmt: str, data: TileData) -> bytes:
        pixels = data.pixels
        if pixels is None:
            pixels = await self.codec.decode(data.encoded[PNG.fmt])
        (body,) = await self.codec.encode_many([(self.encodings[fmt], pixels)])
        await self.cache.put_many({self.key(addr, fmt): body})
        return body

    async def _store(self, tiles: dict[TileAddress, np.ndarray]) -> MetatileTiles:
        """Encode `tiles` in every stored format (one batch for the pool) and cache them."""
        jobs = [(self.encodings[f], px) for px in tiles.values() for f in self.stored]
        bodies = iter(await self.codec.encode_many(jobs))
        out = {a: TileData({f: next(bodies) for f in self.stored}, px) for a, px in tiles.items()}
        await self.cache.put_many(
            {self.key(a, f): b for a, d in out.items() for f, b in d.encoded.items()}
        )
        return out

    def _found(self, tiles: Sequence[TileAddress], found: Sequence[bytes]) -> MetatileTiles:
        """`cache.get_all(stored_keys(tiles))`'s answer, tile by tile."""
        n = len(self.stored)
        return {
            t: TileData(dict(zip(self.stored, found[i * n : (i + 1) * n], strict=True)))
            for i, t in enumerate(tiles)
        }

    async def _child_pixels(
        self, addr: TileAddress, png: bytes | None, demand: Demand
    ) -> np.ndarray:
        if png is None:
            # The priority is read now, not earlier: the parent may have been promoted.
            data = await self._tile(addr, demand.priority, demand.deadline)
            if data.pixels is not None:
                return data.pixels
            png = data.encoded[PNG.fmt]
        return await self.codec.decode(png)  # lossless: the pixels the child was made of

    async def _build_zoomed(self, addr: TileAddress, demand: Demand) -> TileData:
        children = self.grid.children(addr)
        pngs = await self.cache.get_many([self.key(c, PNG.fmt) for c in children])  # one MGET
        missing = [c for c, png in zip(children, pngs, strict=True) if png is None]
        if missing:  # children inside one metatile share its render: count it once
            cost = sum(self.grid.metatiles_under(c) for c in missing)
            self.queue.admit(demand, min(cost, self.grid.metatiles_under(addr)))
        tasks = [
            asyncio.ensure_future(self._child_pixels(c, png, demand))
            for c, png in zip(children, pngs, strict=True)
        ]
        try:
            quad = await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # one child failed (or we were cancelled): stop its siblings
                task.cancel()
        return (await self._store({addr: zoom_out(quad)}))[addr]

    async def _render_metatile(self, meta: Metatile, demand: Demand) -> MetatileTiles:
        tiles = self.grid.metatile_tiles(meta)
        keys = self.stored_keys(tiles)
        async with self._lock.hold(self.grid.lock_name(self.version, meta), keys, demand) as found:
            if found is None:
                # The re-check: another request or replica may have just cached this metatile.
                found = await self.cache.get_all(keys)
            if found is not None:
                return self._found(tiles, found)
            box = self.grid.metatile_box(meta)
            image = await self.queue.render(
                meta.seed, Rect(box.x, box.y, box.size, box.size), demand
            )
            pixels = dict(zip(tiles, split_metatile(image, self.grid.metatile), strict=True))
            # The zoomed-out tiles wholly inside come free: the pyramid's own 2x2 averages of
            # pixels already here, so zooming out over rendered ground costs no render.
            for parent in self.grid.zoomed_out_inside(meta):
                pixels[parent] = zoom_out([pixels[c] for c in self.grid.children(parent)])
            stored = await self._store(pixels)
            return {t: stored[t] for t in tiles}


def zoom_out(quad: Sequence[np.ndarray]) -> np.ndarray:
    """A tile from its four children (TL, TR, BL, BR): the exact 2x2 average of their pixels."""
    tl, tr, bl, br = quad
    top, bottom = np.concatenate([tl, tr], axis=1), np.concatenate([bl, br], axis=1)
    return downsample_2x(np.concatenate([top, bottom], axis=0))


def split_metatile(image: np.ndarray, m: int) -> list[np.ndarray]:
    """uint8 [M*256, M*256, 3] -> M*M tiles, row-major (matches TileGrid.metatile_tiles)."""
    assert image.shape == (m * TILE_SIZE, m * TILE_SIZE, 3), image.shape
    s = TILE_SIZE
    return [image[j * s : (j + 1) * s, i * s : (i + 1) * s] for j in range(m) for i in range(m)]
