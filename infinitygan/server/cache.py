"""Two cache tiers for encoded tiles: an in-process LRU bounded in bytes, then Redis.

Redis holds raw PNG bytes (no pickles) under keys that carry the served version (checkpoint and
world), so a new checkpoint or world never serves stale pixels and nothing needs invalidating;
`allkeys-lru` evicts. Redis is an optimisation, never a dependency: an error or a slow answer is
a miss, is logged and counted, and pauses Redis for `redis_retry_s`, after which the next call
reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .batched_reads import BatchedReads
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Delete the lock only if we still own it (another replica may hold it after our TTL ran out).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def redis_tile_key(prefix: str, key: str) -> str:
    """Where the shared tier keeps the PNG bytes of the tile with content key `key`."""
    return f"{prefix}:tile:{key}"


class MemoryLRU:
    """Least-recently-used map of PNG bytes, bounded by the sum of value sizes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._items[key] = value
        self.size += len(value)
        while self.size > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.size -= len(evicted)


class RedisTier:
    """The shared tier: every call returns None when Redis is unavailable instead of raising."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        assert settings.redis_url is not None
        self.prefix = settings.redis_prefix
        self.retry_s = settings.redis_retry_s
        self.metrics = metrics
        # A burst of requests waits for a free connection (up to `redis_pool_wait_s`) instead
        # of failing at once with MaxConnectionsError, which would pause Redis for everyone.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_wait_s,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            # One immediate retry replaces a pooled socket that died with a restarted Redis;
            # a down or slow Redis still costs one failed call, then the pause below.
            retry=Retry(NoBackoff(), 1),
        )
        self.client = aioredis.Redis.from_pool(pool)  # owns the pool: aclose closes it
        self._down_until = 0.0
        self._gets = BatchedReads(self.mget)

    def tile_key(self, key: str) -> str:
        return redis_tile_key(self.prefix, key)

    def lock_key(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    @property
    def available(self) -> bool:
        """Not in the pause after an error; says nothing about whether Redis is up now."""
        return time.monotonic() >= self._down_until

    async def ping(self, timeout_s: float) -> bool:
        """Whether Redis answers PING within `timeout_s`, now (for /readyz). A probe only: it
        neither counts as an error nor starts or ends the pause the tile path observes."""
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self.client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        if not self.available:
            return None
        try:
            result = await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            self.metrics.redis_errors.labels(op).inc()
            log.warning(
                "redis %s failed (%s: %s); serving without Redis for %.1fs",
                op,
                type(exc).__name__,
                exc,
                self.retry_s,
            )
            self._down_until = time.monotonic() + self.retry_s
            return None
        return result

    async def get(self, key: str) -> bytes | None:
        """One key (every cached-tile request from Redis), read with the other requests' keys
        of the same moment in one MGET: one call per batch, not per request."""
        return await self._gets.get(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None] | None:
        names = [self.tile_key(k) for k in keys]
        return await self._call("get", lambda: self.client.mget(names))

    async def mset(self, items: dict[str, bytes]) -> None:
        mapping = {self.tile_key(k): v for k, v in items.items()}
        await self._call("set", lambda: self.client.mset(mapping))

    async def acquire(self, name: str, token: str, ttl_ms: int) -> bool | None:
        """`SET NX PX`: True if we own the lock, False if another replica does, None if down."""

        async def op() -> bool:  # SET NX answers None when the key exists
            return bool(await self.client.set(self.lock_key(name), token, nx=True, px=ttl_ms))

        return await self._call("lock", op)

    async def held(self, name: str) -> bool | None:
        result = await self._call("lock", lambda: self.client.exists(self.lock_key(name)))
        return None if result is None else bool(result)

    async def release(self, name: str, token: str) -> None:
        await self._call("lock", lambda: self.client.eval(_RELEASE, 1, self.lock_key(name), token))

    async def close(self) -> None:
        await self._gets.close()
        await self.client.aclose()


class TileCache:
    """LRU -> Redis lookups by content key; Redis hits are promoted into the LRU."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.memory = MemoryLRU(settings.cache_bytes)
        self.redis = RedisTier(settings, metrics) if settings.redis_url else None
        self.metrics = metrics
        self._lookups = metrics.cache

    async def get(self, key: str) -> bytes | None:
        value = self.memory.get(key)
        if value is not None:
            self._lookups.inc(("memory", "hit"))
            return value
        self._lookups.inc(("memory", "miss"))
        if self.redis is None:
            return None
        value = await self.redis.get(key)
        if value is None:  # a miss, or Redis unavailable (counted as an error there)
            self._lookups.inc(("redis", "miss"))
            return None
        self._lookups.inc(("redis", "hit"))
        self.memory.put(key, value)
        self.metrics.cache_bytes.set(self.memory.size)
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = [self.memory.get(k) for k in keys]
        missing = [i for i, v in enumerate(values) if v is None]
        self._lookups.inc(("memory", "hit"), len(keys) - len(missing))
        self._lookups.inc(("memory", "miss"), len(missing))
        if not missing or self.redis is None:
            return values
        found = await self.redis.mget([keys[i] for i in missing])
        if found is None:
            return values
        for i, value in zip(missing, found, strict=True):
            if value is not None:
                values[i] = value
                self.memory.put(keys[i], value)
        hits = sum(v is not None for v in found)
        self._lookups.inc(("redis", "hit"), hits)
        self._lookups.inc(("redis", "miss"), len(found) - hits)
        self.metrics.cache_bytes.set(self.memory.size)
        return values

    async def get_all(self, keys: Sequence[str]) -> list[bytes] | None:
        """Every key's value, or None if any is missing (a metatile is cached whole or not)."""
        values = await self.get_many(keys)
        found = [v for v in values if v is not None]
        return found if len(found) == len(values) else None

    async def put_many(self, items: dict[str, bytes]) -> None:
        for key, value in items.items():
            self.memory.put(key, value)
        self.metrics.cache_bytes.set(self.memory.size)
        if self.redis is not None and items:
            await self.redis.mset(items)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()
