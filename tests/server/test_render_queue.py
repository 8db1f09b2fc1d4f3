"""The render queue and single-flight with a fake model: priorities, bounds, drops, batching."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from infinitygan.model.canvas import Rect
from infinitygan.server.demand import Demand, Priority
from infinitygan.server.errors import Overloaded, QueueFull, RenderTimeout
from infinitygan.server.metrics import Metrics
from infinitygan.server.render_queue import RenderQueue
from infinitygan.server.single_flight import SingleFlight
from tests.server.gated_model import GatedModel, wait_until

RECT = Rect(0, 0, 4, 4)


def make_queue(
    model: GatedModel, limit: int = 2, batch_max: int = 2
) -> tuple[RenderQueue, Metrics]:
    """A started queue with `limit` slots per priority and Retry-After 3."""
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


def test_work_that_cannot_finish_by_its_deadline_is_refused_at_once() -> None:
    """After one measured render (0.2 s per metatile), ten requests with 1.0 s left: the ones
    that fit behind the work ahead are queued, the rest refused before waiting at all."""
    model = GatedModel(seconds_per_job=0.2)
    model.gate.set()
    queue, metrics = make_queue(model, limit=64, batch_max=1)

    async def scenario() -> tuple[list[np.ndarray], list[Overloaded], float]:
        await queue.render(0, RECT, Demand(Priority.INTERACTIVE, 1))  # measures the speed
        deadline = time.monotonic() + 1.0
        started = time.monotonic()
        tasks = [
            asyncio.ensure_future(
                queue.render(s, RECT, Demand(Priority.INTERACTIVE, 1, deadline=deadline))
            )
            for s in range(1, 11)
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        refused_after = time.monotonic() - started
        results = await asyncio.gather(*tasks, return_exceptions=True)
        done = [r for r in results if isinstance(r, np.ndarray)]
        return done, [r for r in results if isinstance(r, Overloaded)], refused_after

    done, refused, refused_after = asyncio.run(scenario())
    queue.stop(5)
    assert 2 <= len(done) <= 6 and len(done) + len(refused) == 10
    assert refused_after < 0.15  # refused without waiting behind the queued work
    assert all(r.retry_after is not None and r.retry_after >= 3 for r in refused)
    assert sample(metrics, "infinitygan_dropped_jobs_total", reason="overloaded") == len(refused)
    assert sample(metrics, "infinitygan_delivered_metatiles_total") == 1 + len(done)


def test_queued_work_whose_deadline_passed_is_dropped_before_it_runs() -> None:
    model = GatedModel()
    queue, metrics = make_queue(model, limit=4, batch_max=1)

    async def scenario() -> None:
        busy = asyncio.ensure_future(queue.render(1, RECT, Demand(Priority.INTERACTIVE, 1)))
        await wait_until(model.entered.is_set)
        soon = Demand(Priority.INTERACTIVE, 1, deadline=time.monotonic() + 0.05)
        late = asyncio.ensure_future(queue.render(2, RECT, soon))
        patient = asyncio.ensure_future(queue.render(3, RECT, Demand(Priority.PREFETCH, 1)))
        await asyncio.sleep(0.1)  # the first waiter's deadline passes while it is queued
        model.gate.set()
        await busy
        with pytest.raises(RenderTimeout):
            await late
        await patient

    asyncio.run(scenario())
    queue.stop(5)
    assert model.batches == [[1], [3]]
    assert sample(metrics, "infinitygan_dropped_jobs_total", reason="deadline") == 1


def test_admission_of_many_metatiles_at_once() -> None:
    """A zoomed-out tile asks for all its missing children together: more than the queue holds
    is QueueFull, more than the deadline allows is Overloaded; prefetch has no deadline."""
    model = GatedModel(seconds_per_job=0.1)
    model.gate.set()
    queue, _ = make_queue(model, limit=8, batch_max=1)
    asyncio.run(queue.render(0, RECT, Demand(Priority.INTERACTIVE, 1)))
    in_time = Demand(Priority.INTERACTIVE, 1, deadline=time.monotonic() + 5)
    queue.admit(in_time, 8)
    with pytest.raises(QueueFull):
        queue.admit(in_time, 9)
    with pytest.raises(Overloaded):
        queue.admit(Demand(Priority.INTERACTIVE, 1, deadline=time.monotonic() + 0.3), 8)
    queue.admit(Demand(Priority.PREFETCH, 1, deadline=math.inf), 8)
    queue.stop(5)
