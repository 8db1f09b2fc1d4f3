"""The cross-replica render lock: one replica renders a metatile, the others wait for its tiles.

The lock is a Redis `SET NX PX` key with a TTL, so a replica that dies while rendering cannot
hold it for ever; release deletes it only if we still own it (our TTL may have run out and
another replica taken it). A replica that finds the lock taken polls the shared cache, with
backoff, until every tile of the metatile is there; it tries to take the lock itself when the
lock is released or expires without all tiles cached. Without Redis (or with Redis down) nobody
locks and everybody renders: the lock only saves work, it is never needed for correctness.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from .cache import RedisTier, TileCache
from .demand import Demand
from .errors import Dropped, RenderTimeout
from .metrics import Metrics


class RenderLock:
    def __init__(self, cache: TileCache, metrics: Metrics, ttl_s: float) -> None:
        self.cache = cache
        self.metrics = metrics
        self.ttl_s = ttl_s

    @asynccontextmanager
    async def hold(
        self, name: str, keys: Sequence[str], demand: Demand
    ) -> AsyncIterator[list[bytes] | None]:
        """Yield None while this replica may render the tiles `keys` (it owns the lock, or there
        is no Redis to lock with), or the tiles another replica cached while we waited."""
        redis = self.cache.redis
        if redis is None:
            yield None
            return
        token = uuid.uuid4().hex
        owned, found = await self._acquire_or_wait(redis, name, token, keys, demand)
        try:
            yield found
        finally:
            if owned:
                await redis.release(name, token)

    async def _acquire_or_wait(
        self, redis: RedisTier, name: str, token: str, keys: Sequence[str], demand: Demand
    ) -> tuple[bool, list[bytes] | None]:
        """(owned, tiles found while waiting). Redis being down means render unlocked."""
        deadline = time.monotonic() + self.ttl_s
        waited = False
        while True:
            got = await redis.acquire(name, token, int(self.ttl_s * 1000))
            if got is None or got:
                return bool(got), None
            if not waited:
                self.metrics.lock_waits.inc()
                waited = True
            delay = 0.01
            while True:
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.2)
                found = await self.cache.get_all(keys)
                if found is not None:
                    return False, found
                if demand.waiters <= 0:
                    raise Dropped("nobody waits for this metatile any more")
                if time.monotonic() > deadline:
                    raise RenderTimeout("another replica holds this metatile's render lock")
                if not await redis.held(name):
                    break  # released or expired without every tile cached: try to take it
