"""The model worker: one bounded priority queue, one thread, batched forward passes.

Interactive work always goes before prefetch (renderd's strict priorities). Both queues are
bounded; a full queue is a 503 with `Retry-After` rather than an unbounded wait. Work is tied to a
`Demand` (who still waits for it); a queued job whose demand fell to zero (clients gone, job
cancelled) is dropped when the worker reaches it, while a job that has started runs to the end so
its tiles are cached for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from infinitygan.model.canvas import Rect

from .demand import Demand, Priority
from .errors import Dropped, QueueFull, Unavailable
from .metrics import Metrics

log = logging.getLogger(__name__)

RenderFn = Callable[[Sequence[tuple[int, Rect]]], np.ndarray]  # -> uint8 [B, H, W, 3]


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

    async def render(self, seed: int, rect: Rect, demand: Demand) -> np.ndarray:
        """Queue one rect for the model; uint8 [H, W, 3]. Raises QueueFull when full."""
        loop = asyncio.get_running_loop()
        job = _Job(seed, rect, demand, loop.create_future(), loop)
        with self._cond:
            if self._stopping:
                raise Unavailable("server is shutting down", retry_after=self._retry_after)
            queue = self._queues[demand.priority]
            if len(queue) >= self._limits[demand.priority]:
                self._purge_unwanted()
            if len(queue) >= self._limits[demand.priority]:
                self._metrics.drops.labels("queue_full").inc()
                raise QueueFull(
                    f"the {demand.priority.name.lower()} render queue is full",
                    retry_after=self._retry_after,
                )
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

    def _take_batch(self) -> list[_Job]:
        """Up to batch_max jobs of one rect size, interactive first (caller holds the lock)."""
        batch: list[_Job] = []
        for priority in Priority:
            q = self._queues[priority]
            for job in list(q):
                if len(batch) >= self._batch_max:
                    break
                if job.demand.waiters <= 0:
                    q.remove(job)
                    self._drop(job)
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
            start = time.perf_counter()
            try:
                images = self._render([(job.seed, job.rect) for job in batch])
            except Exception as exc:
                log.exception("render of %d metatiles failed", len(batch))
                for job in batch:
                    job.settle(None, exc)
                continue
            self._metrics.render_seconds.observe(time.perf_counter() - start)
            self._metrics.rendered_metatiles.inc(len(batch))
            assert images.shape[0] == len(batch), (images.shape, len(batch))  # [B, H, W, 3]
            for job, image in zip(batch, images, strict=True):
                job.settle(image, None)
