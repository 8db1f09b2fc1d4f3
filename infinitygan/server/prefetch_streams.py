"""Prefetch jobs shared by every replica on one Redis, worked through a Redis stream.

A job is a hash (`{prefix}:prefetch:job:{id}`): its request, the served version it was
submitted to, total, done/skipped/failed counts, state, wall-clock start and finish, and per
zoom `left:{z}` (units not yet settled), `queued:{z}` (that zoom's units are in the stream). Its
units of work (`prefetch.unit_keys`: a metatile at the native zoom, a tile below it) are stream
entries (fields job, z, x, y) read by the consumer group `prefetch`, in which every replica is
one consumer. Only the native zoom is queued at first; the replica that settles a zoom's last
unit queues the zoom below, so no zoomed-out tile is built before its children are cached.

Replicas on one Redis may serve different versions (another checkpoint or world: a rolling
update, or two worlds side by side). A job caches the tiles of the version it was submitted to,
so its work goes to that version's stream (`{prefix}:prefetch:{version}:items`), which only
replicas serving that version read: a replica never renders another version's job into its own
keys (caching tiles nobody asked for while the job reports done). The running jobs that
`prefetch_max_jobs` counts are that version's too (`{prefix}:prefetch:{version}:running`): they
load the same replicas. Job hashes are shared, so any replica reads and cancels any job.

Each replica claims new entries with XREADGROUP (at most `prefetch_in_hand` at once), works
them through `TileService` at prefetch priority (interactive requests still go first in the
render queue; the Redis render lock still keeps two replicas off one metatile), and settles
each one only once its tiles are cached: one Lua script counts the outcome (HINCRBY), counts
the zoom down and acks (XACK, then XDEL: the stream holds only unfinished work). Entries in
hand are renewed (XCLAIM JUSTID) every tick, so an entry idle past `prefetch_claim_timeout_s`
belongs to a replica that died or stopped, and another takes it over with XAUTOCLAIM. An entry
that failed is left pending to be retried the same way; one delivered
`prefetch_max_attempts` times counts as failed (its error in the hash's `last_error`), so it is
never retried for ever. Settling is idempotent (an entry no longer pending is not counted
twice), and a zoom's last entry is acked only after the next zoom is queued or the job
finished, so a replica dying at any point loses nothing. A finished or cancelled job expires
after `prefetch_retention_s`; entries of a job no longer running are acked unworked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from .errors import JobNotFound, TooManyJobs, Unavailable
from .metrics import Metrics
from .prefetch import (
    JobState,
    PrefetchJob,
    PrefetchRequest,
    plan,
    retry_when_full,
    unit,
    unit_keys,
)
from .service import TileService
from .settings import Settings

log = logging.getLogger(__name__)

GROUP = "prefetch"
_RUNNING = JobState.RUNNING.value

# KEYS: job hash, stream. ARGV: group, entry id, outcome field, tiles, zoom, error or "".
# -> units of the zoom left (0: this was the last; the caller acks after queueing the next
# zoom), -1 if the entry is not pending any more (counted by whoever acked it), or:
_NOT_RUNNING = -2  # the job was cancelled, finished or expired: acked uncounted
_LAST_AGAIN = -3  # a zoom's last entry again (its replica died before the ack): not recounted
_SETTLE = """
local closing = 'closing:' .. ARGV[5]
if redis.call('hget', KEYS[1], closing) == ARGV[2] then return -3 end
if redis.call('hget', KEYS[1], 'state') ~= 'running' then
  redis.call('xack', KEYS[2], ARGV[1], ARGV[2])
  redis.call('xdel', KEYS[2], ARGV[2])
  return -2
end
if #redis.call('xpending', KEYS[2], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return -1 end
redis.call('hincrby', KEYS[1], ARGV[3], ARGV[4])
if ARGV[6] ~= '' then redis.call('hset', KEYS[1], 'last_error', ARGV[6]) end
local left = redis.call('hincrby', KEYS[1], 'left:' .. ARGV[5], -1)
if left == 0 then
  redis.call('hset', KEYS[1], closing, ARGV[2])
else
  redis.call('xack', KEYS[2], ARGV[1], ARGV[2])
  redis.call('xdel', KEYS[2], ARGV[2])
end
return left
"""

# KEYS: job hash, running set. ARGV: final state, finish time, retention s, job id.
# A running job ends once: a cancel racing the last unit leaves whichever came first.
_FINISH = """
if redis.call('hget', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('hset', KEYS[1], 'state', ARGV[1], 'finished', ARGV[2])
redis.call('expire', KEYS[1], ARGV[3])
redis.call('srem', KEYS[2], ARGV[4])
return 1
"""


class StreamPrefetchJobs:
    """`PrefetchJobs` in Redis; this replica's consumer runs from construction to `close`."""

    def __init__(self, service: TileService, settings: Settings, metrics: Metrics) -> None:
        assert settings.redis_url is not None
        self.service = service
        self.settings = settings
        self.metrics = metrics
        self._prefix = prefix = f"{settings.redis_prefix}:prefetch"
        self.stream = f"{prefix}:{service.version}:items"
        self.running = self._running_key(service.version)
        self._job_prefix = f"{prefix}:job:"
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Renewal, reclaim and gauge cadence; also the longest XREADGROUP block, so a block
        # never outlasts a renewal that is due.
        self._tick = min(1.0, settings.prefetch_claim_timeout_s / 3)
        # A client of its own: the cache's socket timeout is shorter than a blocking read.
        self.client = aioredis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout_s + self._tick,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        self._settle = self.client.register_script(_SETTLE)
        self._finish = self.client.register_script(_FINISH)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._in_hand = settings.prefetch_in_hand
        self._next_renewal = 0.0
        self._closing = False
        self._consumer = asyncio.create_task(self._consume(), name="prefetch-consumer")

    def _job_key(self, job_id: str) -> str:
        return self._job_prefix + job_id

    def _running_key(self, version: str) -> str:
        return f"{self._prefix}:{version}:running"

    async def submit(self, request: PrefetchRequest) -> PrefetchJob:
        grid = self.service.grid
        ranges, total = plan(grid, request, self.settings.prefetch_max_tiles)
        version = self.service.version
        job = PrefetchJob(
            uuid.uuid4().hex, request, ranges, total, version, started=time.time(), clock=time.time
        )
        fields: dict[str, Any] = {
            "request": request.model_dump_json(),
            "version": version,
            "total": total,
            "done": 0,
            "skipped": 0,
            "failed": 0,
            "state": _RUNNING,
            "started": job.started,
        }
        for z, r in ranges.items():
            fields[f"left:{z}"] = sum(1 for _ in unit_keys(grid, z, r))
        async with self._redis_errors():
            running = await self.client.scard(self.running)
            if running >= self.settings.prefetch_max_jobs:
                raise TooManyJobs(
                    f"{running} prefetch jobs are running; wait for one to finish",
                    retry_after=self.settings.retry_after_s,
                )
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(self._job_key(job.id), mapping=fields)
                pipe.sadd(self.running, job.id)
                self._queue(pipe, job.id, request.maxzoom, ranges[request.maxzoom])
                await pipe.execute()
        return job

    async def get(self, job_id: str) -> PrefetchJob:
        async with self._redis_errors():
            fields = await self.client.hgetall(self._job_key(job_id))
        if not fields:
            raise JobNotFound(f"no prefetch job {job_id!r}")
        request = PrefetchRequest.model_validate_json(fields["request"])
        finished = fields.get("finished")
        return PrefetchJob(
            job_id,
            request,
            self.service.grid.pyramid(request.bbox, request.minzoom, request.maxzoom),
            int(fields["total"]),
            # "": a job of a replica from before versions were recorded
            fields.get("version", ""),
            done=int(fields["done"]),
            skipped=int(fields["skipped"]),
            failed=int(fields["failed"]),
            state=JobState(fields["state"]),
            started=float(fields["started"]),
            finished=None if finished is None else float(finished),
            clock=time.time,
        )

    async def cancel(self, job_id: str) -> PrefetchJob:
        job = await self.get(job_id)  # JobNotFound first
        async with self._redis_errors():
            await self._end(job_id, JobState.CANCELLED, job.version)
        return await self.get(job_id)

    async def close(self) -> None:
        """Stop claiming and drop the work in hand unacked: other replicas (or this one,
        restarted) take it over after the claim timeout."""
        self._closing = True
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The consumer stops after its blocking read (at most a tick) rather than being
        # cancelled in it: redis-py can lose a cancellation that lands in a blocking read, and
        # the task would then never end.
        await asyncio.wait([self._consumer], timeout=self._tick + self.settings.redis_timeout_s)
        self._consumer.cancel()
        await self.client.aclose()

    @asynccontextmanager
    async def _redis_errors(self) -> AsyncIterator[None]:
        """Shared jobs need Redis: while it fails, the prefetch routes answer 503."""
        try:
            yield
        except (RedisError, OSError) as exc:
            raise Unavailable(
                f"prefetch jobs are kept in Redis, which failed: {type(exc).__name__}",
                retry_after=self.settings.retry_after_s,
            ) from exc

    def _queue(self, pipe: Pipeline, job_id: str, z: int, r: tuple[int, int, int, int]) -> None:
        pipe.hset(self._job_key(job_id), f"queued:{z}", 1)
        for x, y in unit_keys(self.service.grid, z, r):
            pipe.xadd(self.stream, {"job": job_id, "z": z, "x": x, "y": y})

    async def _end(self, job_id: str, state: JobState, version: str) -> None:
        """End a running job of `version` (a replica of another version may cancel it)."""
        await self._finish(
            keys=[self._job_key(job_id), self._running_key(version)],
            args=[state.value, time.time(), self.settings.prefetch_retention_s, job_id],
        )

    # The consumer: claim, work, settle.

    async def _consume(self) -> None:
        """Until `close`: join the group, then keep `_in_hand` entries in hand. A Redis error
        (down, restarted without the group) pauses a tick and starts over."""
        while not self._closing:
            try:
                await self._join()
                while not self._closing:
                    await self._fill()
            except (RedisError, OSError) as exc:
                log.warning("prefetch consumer: redis failed (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(self._tick)

    async def _join(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another replica made it first: fine
                raise

    async def _fill(self) -> None:
        now = time.monotonic()
        if now >= self._next_renewal:
            await self._renew()
            self._next_renewal = now + self._tick
        free = self._in_hand - len(self._inflight)
        if free <= 0:
            await asyncio.wait(
                list(self._inflight.values()),
                timeout=self._tick,
                return_when=asyncio.FIRST_COMPLETED,
            )
            return
        claimed = await self._reclaim(free)
        if len(claimed) < free:
            claimed += await self._read(free - len(claimed))
        for entry_id, fields, deliveries in claimed:
            if entry_id not in self._inflight:
                task = asyncio.create_task(self._work(entry_id, fields, deliveries))
                self._inflight[entry_id] = task
                task.add_done_callback(lambda t, e=entry_id: self._worked(e, t))

    def _worked(self, entry_id: str, task: asyncio.Task[None]) -> None:
        self._inflight.pop(entry_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "prefetch item %s: %r; it is retried after the claim timeout",
                entry_id,
                task.exception(),
            )

    async def _renew(self) -> None:
        """Reset the idle time of the entries in hand (no other replica takes them over while
        this one works, however long the render queue), and read the gauges."""
        async with self.client.pipeline(transaction=False) as pipe:
            if self._inflight:
                pipe.xclaim(
                    self.stream,
                    GROUP,
                    self.consumer,
                    min_idle_time=0,
                    message_ids=list(self._inflight),
                    justid=True,
                )
            pipe.xlen(self.stream)
            pipe.xpending(self.stream, GROUP)
            *_, length, pending = await pipe.execute()
        self.metrics.prefetch_stream_length.set(length)
        self.metrics.prefetch_pending.set(pending["pending"])

    async def _reclaim(self, count: int) -> list[tuple[str, dict[str, str], int]]:
        """Entries idle past the claim timeout (their replica died, or their work failed),
        with how many times each has been delivered, this time included."""
        _, entries, _ = await self.client.xautoclaim(
            self.stream,
            GROUP,
            self.consumer,
            min_idle_time=int(self.settings.prefetch_claim_timeout_s * 1000),
            start_id="0-0",
            count=count,
        )
        if not entries:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id, _ in entries:
                pipe.xpending_range(self.stream, GROUP, min=entry_id, max=entry_id, count=1)
            pending = await pipe.execute()
        self.metrics.prefetch_items.labels("claimed").inc(len(entries))
        self.metrics.prefetch_items.labels("reclaimed").inc(len(entries))
        return [
            (entry_id, fields, p[0]["times_delivered"] if p else 1)
            for (entry_id, fields), p in zip(entries, pending, strict=True)
        ]

    async def _read(self, count: int) -> list[tuple[str, dict[str, str], int]]:
        reply = await self.client.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=count, block=int(self._tick * 1000)
        )
        entries = reply[0][1] if reply else []
        self.metrics.prefetch_items.labels("claimed").inc(len(entries))
        return [(entry_id, fields, 1) for entry_id, fields in entries]

    async def _work(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        job_id, z, key = fields["job"], int(fields["z"]), (int(fields["x"]), int(fields["y"]))
        state, raw = await self.client.hmget(self._job_key(job_id), ["state", "request"])
        if state != _RUNNING:  # cancelled, finished or expired: ack unworked
            await self._settle_entry(job_id, entry_id, z, "skipped", 0, "")
            return
        request = PrefetchRequest.model_validate_json(raw)
        ranges = self.service.grid.pyramid(request.bbox, request.minzoom, request.maxzoom)
        tiles, work = unit(self.service, request.seed, z, ranges[z], key)
        attempts = self.settings.prefetch_max_attempts
        error = ""
        if deliveries > attempts:  # claimed that often and never settled: its replicas died
            outcome, error = "failed", f"delivered {deliveries} times, never finished"
        else:
            try:
                rendered = await retry_when_full(work, self.settings.retry_after_s)
                outcome = "done" if rendered else "skipped"
            except Exception as exc:
                if deliveries < attempts:
                    raise  # left pending: retried after the claim timeout
                outcome, error = "failed", f"{type(exc).__name__}: {exc}"
        if error:
            log.warning("prefetch job %s: %d tiles at zoom %d failed: %s", job_id, tiles, z, error)
        left = await self._settle_entry(job_id, entry_id, z, outcome, tiles, error)
        if left not in (0, _LAST_AGAIN):
            return
        if z > request.minzoom:
            if not await self.client.hexists(self._job_key(job_id), f"queued:{z - 1}"):
                async with self.client.pipeline(transaction=True) as pipe:
                    self._queue(pipe, job_id, z - 1, ranges[z - 1])
                    await pipe.execute()
        else:
            await self._end(job_id, JobState.DONE, self.service.version)
            log.info("prefetch job %s done", job_id)
        await self._ack(entry_id)

    async def _settle_entry(
        self, job_id: str, entry_id: str, z: int, outcome: str, tiles: int, error: str
    ) -> int:
        left = await self._settle(
            keys=[self._job_key(job_id), self.stream],
            args=[GROUP, entry_id, outcome, tiles, z, error],
        )
        if left > 0 or left == _NOT_RUNNING:  # acked by the script
            self.metrics.prefetch_items.labels("acked").inc()
        if left >= 0:
            self.metrics.prefetch_tiles.labels(outcome).inc(tiles)
            if outcome == "failed":
                self.metrics.prefetch_items.labels("failed").inc()
        return left

    async def _ack(self, entry_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()
        self.metrics.prefetch_items.labels("acked").inc()
