"""Single-flight: concurrent requests for the same work share one run and its result.

Each `SingleFlight` runs one kind of work, keyed by what it produces (a metatile, a zoomed-out
tile). Waiters are counted in the flight's `Demand`, so the work (and the render-queue job it
feeds) knows when nobody wants it any more, and at which priority it is wanted.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .demand import Demand, Priority
from .errors import Dropped
from .metrics import Metrics

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def cancel_abandoned(task: asyncio.Task[T], _: Demand) -> None:
    """`on_abandon` for work that only combines other flights' results: cheap to redo, so it
    stops at once (the flights it waits on lose a waiter and decide for themselves)."""
    task.cancel()


@dataclass(eq=False)
class _Flight(Generic[T]):
    demand: Demand
    task: asyncio.Task[T] = field(init=False)


class SingleFlight(Generic[K, T]):
    """At most one `work(key, demand)` in flight per key; later callers wait for the same result.

    `on_abandon(task, demand)` runs when the last waiter leaves: `cancel_abandoned` for cheap
    work built on other flights, while a render only leaves the queue if it has not started (so
    a render under way still finishes and is cached). `on_promote(key, demand)` runs when a
    higher-priority caller joins or `promote` raises the flight's priority.
    """

    def __init__(
        self,
        work: Callable[[K, Demand], Awaitable[T]],
        metrics: Metrics,
        on_abandon: Callable[[asyncio.Task[T], Demand], None],
        on_promote: Callable[[K, Demand], None] | None = None,
    ) -> None:
        self._work = work
        self._flights: dict[K, _Flight[T]] = {}
        self._metrics = metrics
        self._on_abandon = on_abandon
        self._on_promote = on_promote

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, priority: Priority, deadline: float = math.inf) -> T:
        """The work's result; `deadline` (`time.monotonic()`) is when this caller stops waiting
        (the render queue refuses work that cannot be done by then)."""
        for _ in range(3):
            flight = self._flights.get(key)
            if flight is None or flight.task.done():
                flight = _Flight(Demand(priority))
                flight.task = asyncio.ensure_future(self._work(key, flight.demand))
                self._flights[key] = flight
                flight.task.add_done_callback(functools.partial(self._finish, key, flight))
            else:
                self._metrics.coalesced.inc()
                self._raise(key, flight, priority)
            flight.demand.join(priority, deadline)
            try:
                return await asyncio.shield(flight.task)
            except Dropped:
                continue  # dropped in the instant before we joined: start over
            finally:
                flight.demand.waiters -= 1
                if flight.demand.waiters <= 0 and not flight.task.done():
                    self._on_abandon(flight.task, flight.demand)
        raise Dropped("work was dropped repeatedly")

    def promote(self, key: K, priority: Priority) -> None:
        """Work that a higher-priority flight depends on: raise its flight, if any, to match."""
        flight = self._flights.get(key)
        if flight is not None and not flight.task.done():
            self._raise(key, flight, priority)

    def _raise(self, key: K, flight: _Flight[T], priority: Priority) -> None:
        if priority < flight.demand.priority:
            flight.demand.priority = priority
            if self._on_promote is not None:
                self._on_promote(key, flight.demand)

    def _finish(self, key: K, flight: _Flight[T], _: asyncio.Task[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved here: waiters may all have left

    def cancel_all(self) -> None:
        for flight in list(self._flights.values()):
            flight.task.cancel()
