"""The model worker: one bounded priority queue, one thread, batched forward passes.

Interactive work always goes before prefetch (renderd's strict priorities). Work is tied to a
`Demand` (who still waits for it, and until when). Admission is by expected wait, not only by
queue length: from the measured seconds per metatile and the work ahead of it, a job that could
not be finished before its waiters' deadline is refused at once (503 + `Retry-After`) instead of
queueing until its client times out; a full queue is a 503 too. A queued job whose demand fell
to zero (clients gone, job cancelled) or whose deadline can no longer be met is dropped when the
worker reaches it, so the model only renders what someone will receive; a job that has started
runs to the end so its tiles are cached for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from infinitygan.model.canvas import Rect

from .demand import Demand, Priority
from .errors import Dropped, Overloaded, QueueFull, RenderTimeout, Unavailable
from .metrics import Metrics

log = logging.getLogger(__name__)

RenderFn = Callable[[Sequence[tuple[int, Rect]]], np.ndarray]  # -> uint8 [B, H, W, 3]


class RenderClock:
    """Seconds per metatile and when the batch in progress should end: what admission needs to
    predict a new job's wait.

    The figure is deliberately pessimistic: the larger of a moving average and the last batch,
    times `HEADROOM`. Work admitted on an optimistic estimate is rendered and then missed by its
    client, the waste admission exists to prevent, while a pessimistic one only refuses a little
    early; and renders slow down under load, when the PNG encoders and the event loop compete
    with the model for the same cores, after the quiet warm-up that gave the first figure.
    """

    HEADROOM = 1.3

    def __init__(self, smoothing: float = 0.3) -> None:
        self.smoothing = smoothing
        self._average = 0.0  # unmeasured: admit everything until the first batch is timed
        self._last = 0.0
        self._busy_until = 0.0

    @property
    def per_metatile(self) -> float:
        return self.HEADROOM * max(self._average, self._last)

    def started(self, now: float, metatiles: int) -> None:
        self._busy_until = now + metatiles * self.per_metatile

    def finished(self, seconds: float | None, metatiles: int) -> None:
        """The batch ended; `seconds` is None when it failed (nothing learnt about speed)."""
        self._busy_until = 0.0
        if seconds is None:
            return
        self._last = seconds / metatiles
        if self._average == 0.0:
            self._average = self._last
        else:
            self._average += self.smoothing * (self._last - self._average)

    def busy_for(self, now: float) -> float:
        """Expected seconds left in the batch in progress (0 when idle or overdue)."""
        return max(0.0, self._busy_until - now)


@dataclass(eq=False)
class _Job:
    seed: int
    rect: Rect
    demand: Demand
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop
    started: bool = False

    def settle(self, result: np.ndarray | None, error: BaseException | None) -> None:
        """Resolve the future from any thread (the loop may already be closed at shutdown)."""

        def _set() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_set)


class RenderQueue:
    """Bounded interactive/prefetch queues drained by one model thread in batches."""

    def __init__(
        self,
        render: RenderFn,
        metrics: Metrics,
        limits: dict[Priority, int],
        batch_max: int,
        retry_after_s: int,
    ) -> None:
        self._render = render
        self._metrics = metrics
        self._limits = limits
        self._batch_max = batch_max
        self._retry_after = retry_after_s
        self._queues: dict[Priority, deque[_Job]] = {p: deque() for p in Priority}
        self._cond = threading.Condition()
        self._clock = RenderClock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="model-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the batch in progress, fail what is still queued, join the thread."""
        with self._cond:
            self._stopping = True
            pending = [job for q in self._queues.values() for job in q]
            for q in self._queues.values():
                q.clear()
            self._update_depth()
            self._cond.notify_all()
        for job in pending:
            job.settle(None, Unavailable("server is shutting down", retry_after=self._retry_after))
        if self._thread.is_alive():
            self._thread.join(timeout)

    def depth(self, priority: Priority) -> int:
        return len(self._queues[priority])

    def admit(self, demand: Demand, metatiles: int) -> None:
        """Raise `QueueFull` unless `metatiles` more renders at `demand`'s priority fit in its
        queue, and `Overloaded` unless, behind the work already ahead, they are expected to
        finish by its deadline. A zoomed-out tile asks for all its children at once."""
        with self._cond:
            self._admit(demand, metatiles)

    def _admit(self, demand: Demand, metatiles: int) -> None:
        """`admit` with the lock held."""
        queue = self._queues[demand.priority]
        limit = self._limits[demand.priority]
        if len(queue) + metatiles > limit:
            self._purge_unwanted()
        if len(queue) + metatiles > limit:
            self._metrics.drops.labels("queue_full").inc(metatiles)
            raise QueueFull(
                f"the {demand.priority.name.lower()} render queue is full "
                f"({len(queue)} of {limit} queued, {metatiles} more asked)",
                retry_after=self._retry_after,
            )
        if math.isinf(demand.deadline):
            return
        now = time.monotonic()
        per = self._clock.per_metatile
        ahead = sum(  # what the worker will render first; unwanted jobs cost nothing
            job.demand.waiters > 0
            for p in Priority
            if p <= demand.priority
            for job in self._queues[p]
        )
        wait = self._clock.busy_for(now) + ahead * per
        late = now + wait + metatiles * per - demand.deadline
        if late > 0:
            self._metrics.drops.labels("overloaded").inc(metatiles)
            raise Overloaded(
                f"the server is busy: {metatiles} metatile render(s) would wait ~{wait:.0f}s "
                f"behind {ahead} queued and end {late:.1f}s after the request's deadline",
                retry_after=max(self._retry_after, math.ceil(late)),
            )

    async def render(self, seed: int, rect: Rect, demand: Demand) -> np.ndarray:
        """Queue one rect for the model; uint8 [H, W, 3]. Raises QueueFull when the queue is
        full and Overloaded when it could not be rendered before `demand.deadline`."""
        loop = asyncio.get_running_loop()
        job = _Job(seed, rect, demand, loop.create_future(), loop)
        with self._cond:
            if self._stopping:
                raise Unavailable("server is shutting down", retry_after=self._retry_after)
            self._admit(demand, 1)
            queue = self._queues[demand.priority]
            queue.append(job)
            self._update_depth()
            self._cond.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            with self._cond:
                if not job.started and job in self._queues[job.demand.priority]:
                    self._queues[job.demand.priority].remove(job)
                    self._metrics.drops.labels("cancelled").inc()
                    self._update_depth()
            raise

    def promote(self, demand: Demand) -> None:
        """An interactive request joined prefetch work: move its job to the interactive queue."""
        with self._cond:
            low = self._queues[Priority.PREFETCH]
            for job in [j for j in low if j.demand is demand]:
                low.remove(job)
                self._queues[Priority.INTERACTIVE].append(job)
            self._update_depth()

    def discard(self, demand: Demand) -> None:
        """Its last waiter left: drop the job now if it has not started (frees the slot)."""
        with self._cond:
            for q in self._queues.values():
                for job in [j for j in q if j.demand is demand]:
                    q.remove(job)
                    self._drop(job)
            self._update_depth()

    def _update_depth(self) -> None:
        for p, q in self._queues.items():
            self._metrics.queue_depth.labels(p.name.lower()).set(len(q))

    def _purge_unwanted(self) -> None:
        """Drop queued jobs nobody waits for (caller holds the lock)."""
        for q in self._queues.values():
            for job in [j for j in q if j.demand.waiters <= 0]:
                q.remove(job)
                self._drop(job)

    def _drop(self, job: _Job) -> None:
        self._metrics.drops.labels("no_waiters").inc()
        job.settle(None, Dropped("nobody waits for this tile any more"))

    def _expire(self, job: _Job) -> None:
        self._metrics.drops.labels("deadline").inc()
        job.settle(
            None,
            RenderTimeout(
                "the server fell behind: this tile could not be rendered before the request's "
                "deadline",
                retry_after=self._retry_after,
            ),
        )

    def _take_batch(self) -> list[_Job]:
        """Up to batch_max jobs of one rect size, interactive first (caller holds the lock);
        jobs nobody waits for, or that could not end before their deadline, are dropped."""
        batch: list[_Job] = []
        now = time.monotonic()
        for priority in Priority:
            q = self._queues[priority]
            for job in list(q):
                if len(batch) >= self._batch_max:
                    break
                if job.demand.waiters <= 0:
                    q.remove(job)
                    self._drop(job)
                elif job.demand.deadline < now + (len(batch) + 1) * self._clock.per_metatile:
                    q.remove(job)
                    self._expire(job)
                elif not batch or (job.rect.width, job.rect.height) == (
                    batch[0].rect.width,
                    batch[0].rect.height,
                ):
                    q.remove(job)
                    job.started = True
                    batch.append(job)
        self._update_depth()
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._take_batch()
                while not batch and not self._stopping:
                    self._cond.wait()
                    batch = self._take_batch()
                if not batch:
                    return
                start = time.monotonic()
                self._clock.started(start, len(batch))
            try:
                images = self._render([(job.seed, job.rect) for job in batch])
            except Exception as exc:
                log.exception("render of %d metatiles failed", len(batch))
                with self._cond:
                    self._clock.finished(None, len(batch))
                for job in batch:
                    job.settle(None, exc)
                continue
            seconds = time.monotonic() - start
            with self._cond:
                self._clock.finished(seconds, len(batch))
            self._metrics.render_seconds.observe(seconds)
            self._metrics.rendered_metatiles.inc(len(batch))
            self._metrics.delivered_metatiles.inc(sum(job.demand.waiters > 0 for job in batch))
            assert images.shape[0] == len(batch), (images.shape, len(batch))  # [B, H, W, 3]
            for job, image in zip(batch, images, strict=True):
                job.settle(image, None)
