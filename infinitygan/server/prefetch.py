"""Batch prefetch jobs: seed a tile bbox over a zoom range at prefetch priority.

The bbox is given in tile coordinates at the job's `maxzoom` (inclusive); lower zooms take the
parent tiles. Zooms run from the highest down, so every zoomed-out tile is built from children
the job has just cached. Cached tiles are skipped, so a job is idempotent and cheap to re-run.

The routes reach jobs through `PrefetchJobs`: without Redis, `PrefetchManager` keeps them in
this process; with Redis, `prefetch_streams.StreamPrefetchJobs` shares them between replicas.
Both cut a job into the same units of work (`unit_keys`, `unit`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from infinitygan.bounds import MAX_SEED

from .errors import JobNotFound, PrefetchTooLarge, QueueFull, TooManyJobs
from .metrics import Metrics
from .service import TileService
from .settings import Settings
from .tiling import Metatile, TileAddress, TileGrid, range_count

log = logging.getLogger(__name__)


class PrefetchRequest(BaseModel):
    """Strict types: JSON integers only, never `true`, `1.0` or `"1"` coerced into one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    seed: int = Field(ge=0, lt=MAX_SEED)
    minzoom: int = Field(ge=0)
    maxzoom: int = Field(ge=0)
    # FastAPI validates the parsed JSON as Python objects, where a strict tuple refuses the
    # JSON array (a list); only the container is lax, its items are strict integers.
    bbox: tuple[StrictInt, StrictInt, StrictInt, StrictInt] = Field(
        strict=False,
        description="[min_x, min_y, max_x, max_y], inclusive tile coordinates at maxzoom",
    )


class JobState(str, enum.Enum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(eq=False)
class PrefetchJob:
    id: str
    request: PrefetchRequest
    ranges: dict[int, tuple[int, int, int, int]]
    total: int
    version: str  # the served version whose tiles the job caches (checkpoint and world)
    done: int = 0  # rendered by this job
    skipped: int = 0  # already cached
    failed: int = 0
    state: JobState = JobState.RUNNING
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    task: asyncio.Task[None] | None = None
    # What `started` and `finished` were read from: jobs shared between replicas need the
    # wall clock, as one machine's monotonic clock means nothing on another.
    clock: Callable[[], float] = time.monotonic

    def progress(self) -> dict[str, Any]:
        elapsed = (self.finished or self.clock()) - self.started
        processed = self.done + self.skipped + self.failed
        rate = processed / elapsed if elapsed > 0 else 0.0
        remaining = self.total - processed
        running = self.state is JobState.RUNNING
        return {
            "id": self.id,
            "state": self.state.value,
            **self.request.model_dump(),
            "version": self.version,
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "remaining": remaining,
            "elapsed_seconds": round(elapsed, 3),
            "tiles_per_second": round(rate, 3),
            "eta_seconds": round(remaining / rate, 1) if running and rate > 0 else None,
        }


class PrefetchJobs(Protocol):
    """What the routes use: the in-process manager and the Redis-shared jobs both are one."""

    async def submit(self, request: PrefetchRequest) -> PrefetchJob:
        """Validate and start a job: `PrefetchTooLarge`, `InvalidPrefetch` or `TooManyJobs`."""
        ...

    async def get(self, job_id: str) -> PrefetchJob:
        """The job's state now (`JobNotFound` if unknown or forgotten)."""
        ...

    async def cancel(self, job_id: str) -> PrefetchJob:
        """Stop a running job (a finished one is left as it is); its state after that."""
        ...

    async def close(self) -> None:
        """Stop working on jobs (server shutdown)."""
        ...


def plan(
    grid: TileGrid, request: PrefetchRequest, max_tiles: int
) -> tuple[dict[int, tuple[int, int, int, int]], int]:
    """(tile ranges per zoom, highest first; total tiles) of a job within the size limit."""
    ranges = grid.pyramid(request.bbox, request.minzoom, request.maxzoom)
    total = sum(range_count(r) for r in ranges.values())
    if total > max_tiles:
        raise PrefetchTooLarge(f"the job covers {total} tiles; at most {max_tiles} per job")
    return ranges, total


class PrefetchManager:
    """Jobs in this process, each a task; finished ones are kept for GET up to a count."""

    def __init__(self, service: TileService, settings: Settings, metrics: Metrics) -> None:
        self.service = service
        self.settings = settings
        self.metrics = metrics
        self._jobs: OrderedDict[str, PrefetchJob] = OrderedDict()

    async def submit(self, request: PrefetchRequest) -> PrefetchJob:
        ranges, total = plan(self.service.grid, request, self.settings.prefetch_max_tiles)
        running = sum(j.state is JobState.RUNNING for j in self._jobs.values())
        if running >= self.settings.prefetch_max_jobs:
            raise TooManyJobs(
                f"{running} prefetch jobs are running; wait for one to finish",
                retry_after=self.settings.retry_after_s,
            )
        job = PrefetchJob(uuid.uuid4().hex, request, ranges, total, self.service.version)
        job.task = asyncio.create_task(self._run(job), name=f"prefetch-{job.id}")
        self._jobs[job.id] = job
        self._forget_old()
        return job

    async def get(self, job_id: str) -> PrefetchJob:
        return self._job(job_id)

    def _job(self, job_id: str) -> PrefetchJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no prefetch job {job_id!r}") from None

    async def cancel(self, job_id: str) -> PrefetchJob:
        job = self._job(job_id)
        if job.state is JobState.RUNNING and job.task is not None:
            job.task.cancel()
            job.state = JobState.CANCELLED
            job.finished = time.monotonic()
        return job

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state is not JobState.RUNNING]
        for key in finished[: max(0, len(self._jobs) - self.settings.prefetch_keep_jobs)]:
            del self._jobs[key]

    async def _run(self, job: PrefetchJob) -> None:
        try:
            for z, r in job.ranges.items():
                keys = unit_keys(self.service.grid, z, r)
                await self._pool(job, (unit(self.service, job.request.seed, z, r, k) for k in keys))
        except asyncio.CancelledError:
            job.state = JobState.CANCELLED
            raise
        except Exception:
            log.exception("prefetch job %s failed", job.id)
            job.state = JobState.FAILED
        else:
            job.state = JobState.DONE
        finally:
            job.finished = job.finished or time.monotonic()
            log.info("prefetch job %s %s: %s", job.id, job.state.value, job.progress())

    async def _pool(self, job: PrefetchJob, units: Iterator[Unit]) -> None:
        """A few workers pull units; each unit is retried while the render queue is full."""

        async def worker() -> None:
            for count, work in units:
                try:
                    rendered = await retry_when_full(work, self.settings.retry_after_s)
                    outcome = "done" if rendered else "skipped"
                except Exception as exc:
                    log.warning("prefetch job %s: %d tiles failed: %s", job.id, count, exc)
                    outcome = "failed"
                setattr(job, outcome, getattr(job, outcome) + count)
                self.metrics.prefetch_tiles.labels(outcome).inc(count)

        await asyncio.gather(*(worker() for _ in range(self.settings.prefetch_concurrency)))


Unit = tuple[int, Callable[[], Awaitable[bool]]]  # (tiles covered, work -> rendered?)


def unit_keys(grid: TileGrid, z: int, r: tuple[int, int, int, int]) -> Iterator[tuple[int, int]]:
    """The units of one zoom's range, row by row: whole metatiles (mx, my) at the native zoom
    (one render each), single tiles (x, y) below it."""
    x0, y0, x1, y1 = r
    if z == grid.maxzoom:
        m = grid.metatile
        x0, y0, x1, y1 = x0 // m, y0 // m, x1 // m, y1 // m
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            yield x, y


def unit(
    service: TileService, seed: int, z: int, r: tuple[int, int, int, int], key: tuple[int, int]
) -> Unit:
    """The work of the unit `key` (from `unit_keys`) of zoom `z`, whose job range there is `r`."""
    x, y = key
    if z < service.grid.maxzoom:
        addr = TileAddress(seed, z, x, y)
        return 1, lambda: service.prefetch_tile(addr)
    meta = Metatile(seed, x, y)
    x0, y0, x1, y1 = r
    wanted = [t for t in service.grid.metatile_tiles(meta) if x0 <= t.x <= x1 and y0 <= t.y <= y1]
    return len(wanted), lambda: service.prefetch_metatile(meta, wanted)


async def retry_when_full(work: Callable[[], Awaitable[bool]], retry_after_s: int) -> bool:
    """Prefetch yields to interactive load: a full queue means wait and try again."""
    delay = 0.05
    while True:
        try:
            return await work()
        except QueueFull:
            await asyncio.sleep(delay)
            delay = min(2 * delay, float(retry_after_s))
