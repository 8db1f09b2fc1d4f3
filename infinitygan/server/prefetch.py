"""Batch prefetch jobs: seed a tile bbox over a zoom range at prefetch priority.

The bbox is given in tile coordinates at the job's `maxzoom` (inclusive); lower zooms take the
parent tiles. Zooms run from the highest down, so every zoomed-out tile is built from children
the job has just cached. Cached tiles are skipped, so a job is idempotent and cheap to re-run.
Jobs live in this process (a replica); the tiles they render go to the shared cache.
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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from infinitygan.bounds import MAX_SEED

from .errors import JobNotFound, PrefetchTooLarge, QueueFull, TooManyJobs
from .metrics import Metrics
from .service import TileService
from .settings import Settings
from .tiling import Metatile, TileAddress, range_count

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
    done: int = 0  # rendered by this job
    skipped: int = 0  # already cached
    failed: int = 0
    state: JobState = JobState.RUNNING
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    task: asyncio.Task[None] | None = None

    def progress(self) -> dict[str, Any]:
        elapsed = (self.finished or time.monotonic()) - self.started
        processed = self.done + self.skipped + self.failed
        rate = processed / elapsed if elapsed > 0 else 0.0
        remaining = self.total - processed
        running = self.state is JobState.RUNNING
        return {
            "id": self.id,
            "state": self.state.value,
            **self.request.model_dump(),
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "remaining": remaining,
            "elapsed_seconds": round(elapsed, 3),
            "tiles_per_second": round(rate, 3),
            "eta_seconds": round(remaining / rate, 1) if running and rate > 0 else None,
        }


class PrefetchManager:
    def __init__(self, service: TileService, settings: Settings, metrics: Metrics) -> None:
        self.service = service
        self.settings = settings
        self.metrics = metrics
        self._jobs: OrderedDict[str, PrefetchJob] = OrderedDict()

    def submit(self, request: PrefetchRequest) -> PrefetchJob:
        ranges = self.service.grid.pyramid(request.bbox, request.minzoom, request.maxzoom)
        total = sum(range_count(r) for r in ranges.values())
        limit = self.settings.prefetch_max_tiles
        if total > limit:
            raise PrefetchTooLarge(f"the job covers {total} tiles; at most {limit} per job")
        running = sum(j.state is JobState.RUNNING for j in self._jobs.values())
        if running >= self.settings.prefetch_max_jobs:
            raise TooManyJobs(
                f"{running} prefetch jobs are running; wait for one to finish",
                retry_after=self.settings.retry_after_s,
            )
        job = PrefetchJob(uuid.uuid4().hex, request, ranges, total)
        job.task = asyncio.create_task(self._run(job), name=f"prefetch-{job.id}")
        self._jobs[job.id] = job
        self._forget_old()
        return job

    def get(self, job_id: str) -> PrefetchJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no prefetch job {job_id!r}") from None

    def cancel(self, job_id: str) -> PrefetchJob:
        job = self.get(job_id)
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
                await self._pool(job, _units(self.service, job.request.seed, z, r))
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

    async def _pool(self, job: PrefetchJob, units: Iterator[_Unit]) -> None:
        """A few workers pull units; each unit is retried while the render queue is full."""

        async def worker() -> None:
            for count, work in units:
                try:
                    rendered = await _retry_when_full(work, self.settings.retry_after_s)
                    outcome = "done" if rendered else "skipped"
                except Exception as exc:
                    log.warning("prefetch job %s: %d tiles failed: %s", job.id, count, exc)
                    outcome = "failed"
                setattr(job, outcome, getattr(job, outcome) + count)
                self.metrics.prefetch_tiles.labels(outcome).inc(count)

        await asyncio.gather(*(worker() for _ in range(self.settings.prefetch_concurrency)))


_Unit = tuple[int, Callable[[], Awaitable[bool]]]  # (tiles covered, work -> rendered?)


def _units(
    service: TileService, seed: int, z: int, r: tuple[int, int, int, int]
) -> Iterator[_Unit]:
    """Whole metatiles at the native zoom (one render each), single tiles below it."""
    x0, y0, x1, y1 = r
    grid = service.grid
    if z < grid.maxzoom:
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                addr = TileAddress(seed, z, x, y)
                yield 1, lambda a=addr: service.prefetch_tile(a)
        return
    m = grid.metatile
    for my in range(y0 // m, y1 // m + 1):
        for mx in range(x0 // m, x1 // m + 1):
            meta = Metatile(seed, mx, my)
            wanted = [t for t in grid.metatile_tiles(meta) if x0 <= t.x <= x1 and y0 <= t.y <= y1]
            yield len(wanted), lambda mt=meta, w=wanted: service.prefetch_metatile(mt, w)


async def _retry_when_full(work: Callable[[], Awaitable[bool]], retry_after_s: int) -> bool:
    """Prefetch yields to interactive load: a full queue means wait and try again."""
    delay = 0.05
    while True:
        try:
            return await work()
        except QueueFull:
            await asyncio.sleep(delay)
            delay = min(2 * delay, float(retry_after_s))
