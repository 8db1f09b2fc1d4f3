"""Single-key reads of a shared store, sent as one multi-key read per batch.

A cached tile read from Redis costs redis-py far more CPU per call (taking a pooled connection,
packing the command, parsing the reply, the asyncio plumbing around each) than Redis needs to
answer it, so one `GET` per request caps the shared tier at a fraction of what the server can
answer from memory. Requests under load arrive many per event-loop iteration: `BatchedReads`
gathers the keys they ask for in one iteration and reads them with one `MGET`, so the per-call
cost is shared by the batch. While `max_in_flight` batches are out, new reads wait for the
next one: batches then grow with the load instead of the number of calls. An idle server sends
a read on the next loop iteration, adding no wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

Fetch = Callable[[Sequence[str]], Awaitable[Sequence[bytes | None] | None]]


class BatchedReads:
    """`await get(key)` is `fetch([key])[0]`, with concurrent gets sharing one `fetch`.

    `fetch` returns one value per key, in order, or None when the store is unavailable (every
    read of that batch is then a miss). A key asked for twice in a batch is fetched once; a
    cancelled `get` (its client left) leaves the rest of its batch alone.
    """

    def __init__(self, fetch: Fetch, max_in_flight: int = 2, max_batch: int = 64) -> None:
        self._fetch = fetch
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_due = False
        self._closed = False

    async def get(self, key: str) -> bytes | None:
        if self._closed:
            return None  # as from a store that is unavailable
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if (
            not self._flush_due
            and not self._closed
            and self._pending
            and len(self._in_flight) < self.max_in_flight
        ):
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """At the end of the loop iteration in which the batch's first read was asked for."""
        self._flush_due = False
        batch = [(k, f) for k, f in self._pending[: self.max_batch] if not f.done()]
        del self._pending[: self.max_batch]
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)
        else:
            self._schedule()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._schedule()

    async def _send(self, batch: list[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            values = await self._fetch(keys)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # a bug in fetch: its readers get it, not the loop's log
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        found = dict(zip(keys, values, strict=True)) if values is not None else {}
        for key, future in batch:
            if not future.done():
                future.set_result(found.get(key))

    async def close(self) -> None:
        """Cancel the reads waiting and the batches in flight (shutdown); later gets miss."""
        self._closed = True
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
