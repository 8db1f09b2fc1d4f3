"""The render queue and single-flight with a fake model: priorities, bounds, drops, batching."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from infinitygan.model.canvas import Rect
from infinitygan.server.demand import Demand, Priority
from infinitygan.server.errors import QueueFull
from infinitygan.server.metrics import Metrics
from infinitygan.server.render_queue import RenderQueue
from infinitygan.server.single_flight import SingleFlight
from tests.server.gated_model import GatedModel, wait_until

RECT = Rect(0, 0, 4, 4)


def make_queue(
    model: GatedModel, limit: int = 2, batch_max: int = 2
) -> tuple[RenderQueue, Metrics]:
    metrics = Metrics()
    queue = RenderQueue(
        model, metrics, {Priority.INTERACTIVE: limit, Priority.PREFETCH: limit}, batch_max, 3
    )
    queue.start()
    return queue, metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_interactive_before_prefetch_and_batching() -> None:
    model = GatedModel()
    queue, _ = make_queue(model, limit=4, batch_max=2)

    async def scenario() -> list[np.ndarray]:
        first = asyncio.ensure_future(queue.render(1, RECT, Demand(Priority.PREFETCH, 1)))
        await wait_until(model.entered.is_set)  # seed 1 is in the model; the rest queue behind it
        rest = [
            asyncio.ensure_future(queue.render(s, RECT, Demand(p, 1)))
            for s, p in [(2, Priority.PREFETCH), (3, Priority.PREFETCH), (4, Priority.INTERACTIVE)]
        ]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(scenario())
    queue.stop(5)
    assert [int(r[0, 0, 0]) for r in results] == [1, 2, 3, 4]
    assert model.batches == [[1], [4, 2], [3]]  # interactive first, then batches of 2


def test_full_queue_raises_with_retry_after_and_unwanted_work_is_dropped() -> None:
    model = GatedModel()
    queue, metrics = make_queue(model, limit=2)

    async def scenario() -> None:
        busy = asyncio.ensure_future(queue.render(1, RECT, Demand(Priority.INTERACTIVE, 1)))
        await wait_until(model.entered.is_set)
        abandoned = Demand(Priority.INTERACTIVE, 1)
        queued = [
            asyncio.ensure_future(queue.render(2, RECT, abandoned)),
            asyncio.ensure_future(queue.render(3, RECT, Demand(Priority.INTERACTIVE, 1))),
        ]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as info:
            await queue.render(4, RECT, Demand(Priority.INTERACTIVE, 1))
        assert info.value.retry_after == 3
        abandoned.waiters = 0  # its client went away: the slot is reclaimed for new work
        fresh = asyncio.ensure_future(queue.render(5, RECT, Demand(Priority.INTERACTIVE, 1)))
        await asyncio.sleep(0.01)
        queued[1].cancel()  # a cancelled waiter removes its job too
        await asyncio.sleep(0.01)
        model.gate.set()
        await busy
        assert int((await fresh)[0, 0, 0]) == 5
        await asyncio.gather(*queued, return_exceptions=True)

    asyncio.run(scenario())
    queue.stop(5)
    assert model.batches == [[1], [5]]
    assert sample(metrics, "infinitygan_dropped_jobs_total", reason="queue_full") == 1
    assert sample(metrics, "infinitygan_dropped_jobs_total", reason="no_waiters") == 1
    assert sample(metrics, "infinitygan_dropped_jobs_total", reason="cancelled") == 1


def test_single_flight_shares_one_result_and_promotes() -> None:
    model = GatedModel()
    queue, metrics = make_queue(model, limit=8)
    calls = 0

    async def work(_: str, demand: Demand) -> np.ndarray:
        nonlocal calls
        calls += 1
        return await queue.render(7, RECT, demand)

    flights: SingleFlight[str, np.ndarray] = SingleFlight(
        work,
        metrics,
        on_abandon=lambda _, demand: queue.discard(demand),
        on_promote=lambda _, demand: queue.promote(demand),
    )

    async def scenario() -> list[np.ndarray]:
        blocker = asyncio.ensure_future(queue.render(1, RECT, Demand(Priority.PREFETCH, 1)))
        await wait_until(model.entered.is_set)
        waiters = [asyncio.ensure_future(flights.run("k", Priority.PREFETCH))]
        await asyncio.sleep(0.01)
        other = asyncio.ensure_future(queue.render(2, RECT, Demand(Priority.PREFETCH, 1)))
        await asyncio.sleep(0.01)
        waiters += [asyncio.ensure_future(flights.run("k", Priority.INTERACTIVE)) for _ in range(9)]
        await asyncio.sleep(0.01)
        model.gate.set()
        await asyncio.gather(blocker, other)
        return await asyncio.gather(*waiters)

    results = asyncio.run(scenario())
    queue.stop(5)
    assert calls == 1 and len(results) == 10
    assert all(int(r[0, 0, 0]) == 7 for r in results)
    assert sample(metrics, "infinitygan_coalesced_waiters_total") == 9
    assert model.batches[1][0] == 7  # promoted ahead of the earlier prefetch job (seed 2)
    assert len(flights) == 0


def test_abandoned_flight_leaves_the_queue_at_once() -> None:
    model = GatedModel()
    queue, metrics = make_queue(model, limit=4)
    flights: SingleFlight[str, np.ndarray] = SingleFlight(
        lambda _, demand: queue.render(2, RECT, demand),
        metrics,
        on_abandon=lambda _, demand: queue.discard(demand),
    )

    async def scenario() -> None:
        busy = asyncio.ensure_future(queue.render(1, RECT, Demand(Priority.INTERACTIVE, 1)))
        await wait_until(model.entered.is_set)
        waiter = asyncio.ensure_future(flights.run("k", Priority.PREFETCH))
        await asyncio.sleep(0.01)
        assert queue.depth(Priority.PREFETCH) == 1
        waiter.cancel()  # e.g. a cancelled prefetch job: the slot is freed before the model runs
        await asyncio.sleep(0.01)
        assert queue.depth(Priority.PREFETCH) == 0
        model.gate.set()
        await busy

    asyncio.run(scenario())
    queue.stop(5)
    assert model.batches == [[1]]
    assert sample(metrics, "infinitygan_dropped_jobs_total", reason="no_waiters") == 1
    assert len(flights) == 0
