"""Cache tiers: the byte-bounded LRU, and Redis dying, coming back, being flushed, and being
shared by two replicas (one render per metatile across both, thanks to the Redis lock);
/readyz reporting Redis as it is."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from infinitygan.server.cache import MemoryLRU, redis_tile_key
from infinitygan.server.encode import PNG
from infinitygan.server.tiling import TileAddress, content_key

from .conftest import LiveServer, TinyCheckpoint, settings_for
from .harness import RedisProcess


def test_lru_is_bounded_in_bytes() -> None:
    lru = MemoryLRU(max_bytes=10)
    lru.put("a", b"1234")
    lru.put("b", b"1234")
    assert lru.get("a") == b"1234"  # a is now the most recent
    lru.put("c", b"1234")  # 12 bytes > 10: evicts b, the least recent
    assert lru.get("b") is None and lru.get("a") and lru.get("c")
    assert lru.size == 8
    lru.put("huge", b"x" * 11)  # larger than the whole cache: not stored, nothing evicted
    assert lru.get("huge") is None and len(lru) == 2
    lru.put("a", b"12")
    assert lru.size == 6


def _redis_keys(redis_proc: RedisProcess, prefix: str) -> set[str]:
    client = redis_proc.client()
    try:
        return {k.decode() for k in client.scan_iter(match=f"{prefix}:tile:*")}
    finally:
        client.close()


def _tile_key(prefix: str, version: str, seed: int, z: int, x: int, y: int) -> str:
    return redis_tile_key(prefix, content_key(version, TileAddress(seed, z, x, y), PNG.tag))


def test_redis_killed_mid_run_then_back(
    live_server, tiny_checkpoint: TinyCheckpoint, own_redis: RedisProcess
) -> None:
    # No in-process cache, so every lookup goes to Redis and a dead Redis means re-rendering.
    server: LiveServer = live_server(
        settings_for(
            tiny_checkpoint,
            redis_url=own_redis.url,
            redis_prefix="t",
            cache_bytes=0,
            redis_retry_s=0.2,
            redis_timeout_s=0.5,
            metatile=1,
            warmup=False,
        )
    )
    version = server.version
    first = server.client.get("/tiles/21/8/0/0.png")
    assert first.status_code == 200
    assert _tile_key("t", version, 21, 8, 0, 0) in _redis_keys(own_redis, "t")
    renders = server.metric("infinitygan_rendered_metatiles_total")

    own_redis.kill()
    again = server.client.get("/tiles/21/8/0/0.png")
    assert again.status_code == 200 and again.content == first.content  # re-rendered
    for x in range(1, 4):
        assert server.client.get(f"/tiles/21/8/{x}/0.png").status_code == 200
    assert server.client.get("/readyz").status_code == 200
    assert server.metric("infinitygan_redis_errors_total") >= 1
    assert server.metric("infinitygan_rendered_metatiles_total") - renders == 4

    own_redis.start()  # same port, empty
    deadline = time.monotonic() + 10
    x = 10
    while _tile_key("t", version, 21, 8, x - 1, 0) not in _redis_keys(own_redis, "t"):
        assert time.monotonic() < deadline, "tiles never reached the restarted Redis"
        assert server.client.get(f"/tiles/21/8/{x}/0.png").status_code == 200
        x += 1
        time.sleep(0.05)
    # Reconnected: a new tile is cached and then served from Redis without rendering.
    renders = server.metric("infinitygan_rendered_metatiles_total")
    assert server.client.get("/tiles/21/8/50/0.png").status_code == 200
    assert _tile_key("t", version, 21, 8, 50, 0) in _redis_keys(own_redis, "t")
    assert server.client.get("/tiles/21/8/50/0.png").status_code == 200
    assert server.metric("infinitygan_rendered_metatiles_total") - renders == 1
    assert server.metric("infinitygan_cache_requests_total", tier="redis", result="hit") >= 1

    client = own_redis.client()
    client.flushall()  # our own Redis: flushed mid-run, tiles are simply rendered again
    client.close()
    assert server.client.get("/tiles/21/8/50/0.png").status_code == 200
    assert _tile_key("t", version, 21, 8, 50, 0) in _redis_keys(own_redis, "t")


def test_two_replicas_render_each_metatile_once(
    live_server, tiny_checkpoint: TinyCheckpoint, own_redis: RedisProcess
) -> None:
    settings = settings_for(tiny_checkpoint, redis_url=own_redis.url, redis_prefix="r")
    a: LiveServer = live_server(settings)
    b: LiveServer = live_server(settings)
    before = [s.metric("infinitygan_rendered_metatiles_total") for s in (a, b)]

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            requests = [
                client.get(f"{server.url}/tiles/31/8/{x}/{y}.png")
                for server in (a, b, a, b)
                for x in range(settings.metatile)
                for y in range(settings.metatile)
            ]
            return [r.status_code for r in await asyncio.gather(*requests)]

    assert set(asyncio.run(hammer())) == {200}
    after = [s.metric("infinitygan_rendered_metatiles_total") for s in (a, b)]
    assert sum(after) - sum(before) == 1  # one metatile, rendered by exactly one replica
    waits = a.metric("infinitygan_redis_lock_waits_total") + b.metric(
        "infinitygan_redis_lock_waits_total"
    )
    assert waits >= 1


def test_readyz_reports_redis_as_a_ping_sees_it(
    live_server, tiny_checkpoint: TinyCheckpoint, own_redis: RedisProcess
) -> None:
    """Every sample during an outage says "down" (the tier's error pause ends after
    `redis_retry_s`, which says nothing about Redis), yet readiness stays 200; a hung Redis is
    "down" within the short PING timeout; a restarted one is "up" again."""
    server: LiveServer = live_server(
        settings_for(
            tiny_checkpoint, redis_url=own_redis.url, redis_retry_s=0.1, metatile=1, warmup=False
        )
    )

    def sample() -> tuple[int, str, float]:
        start = time.monotonic()
        response = server.client.get("/readyz")
        return response.status_code, response.json()["redis"], time.monotonic() - start

    assert sample()[:2] == (200, "up")
    own_redis.kill()
    samples = []
    for i in range(20):
        samples.append(sample())
        if i % 5 == 0:  # tile traffic meets the dead Redis too, pausing and resuming the tier
            assert server.client.get(f"/tiles/22/8/{i}/0.png").status_code == 200
        time.sleep(0.05)
    assert [s[:2] for s in samples] == [(200, "down")] * 20
    assert max(s[2] for s in samples) < 2.0

    own_redis.start()  # same port
    deadline = time.monotonic() + 10
    while sample()[1] != "up":
        assert time.monotonic() < deadline, "never up again after the restart"
        time.sleep(0.05)

    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)  # alive but silent: connections hang
    try:
        hung = [sample() for _ in range(3)]
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    assert [s[:2] for s in hung] == [(200, "down")] * 3
    assert max(s[2] for s in hung) < 2.0  # bounded by the 0.25 s PING timeout, not a hang
