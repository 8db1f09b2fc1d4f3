"""BatchedReads: concurrent single-key reads share one multi-key fetch; batches grow while
fetches are in flight; misses, failures and cancelled readers stay each reader's own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from infinitygan.server.batched_reads import BatchedReads


class Store:
    """A dict behind an awaitable multi-key read that records each call; `gate`, when set,
    holds every call until it is opened."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.calls: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.down = False

    async def fetch(self, keys: Sequence[str]) -> list[bytes | None] | None:
        self.calls.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # a real round trip yields to the loop
        return None if self.down else [self.data.get(k) for k in keys]


def test_concurrent_gets_share_one_fetch_of_unique_keys() -> None:
    store = Store({f"k{i}": b"%d" % i for i in range(40)})

    async def run() -> list[bytes | None]:
        reads = BatchedReads(store.fetch)
        keys = [f"k{i % 30}" for i in range(60)] + ["absent"]  # each of k0..k29 twice
        return await asyncio.gather(*(reads.get(k) for k in keys))

    values = asyncio.run(run())
    assert values == [b"%d" % (i % 30) for i in range(60)] + [None]
    assert len(store.calls) == 1
    assert sorted(store.calls[0]) == sorted([f"k{i}" for i in range(30)] + ["absent"])


def test_a_lone_get_is_sent_at_once() -> None:
    store = Store({"a": b"1"})

    async def run() -> None:
        reads = BatchedReads(store.fetch)
        assert await asyncio.wait_for(reads.get("a"), 1) == b"1"
        assert await asyncio.wait_for(reads.get("b"), 1) is None

    asyncio.run(run())
    assert store.calls == [["a"], ["b"]]


def test_batches_grow_while_fetches_are_in_flight() -> None:
    """With max_in_flight fetches out, later reads wait and go out together in one fetch."""
    store = Store({f"k{i}": b"v" for i in range(10)})

    async def run() -> None:
        store.gate = asyncio.Event()
        reads = BatchedReads(store.fetch, max_in_flight=1)
        first = asyncio.ensure_future(reads.get("k0"))
        await asyncio.sleep(0.01)  # k0's fetch is out and held
        later = []
        for i in range(1, 10):  # one read per loop iteration
            later.append(asyncio.ensure_future(reads.get(f"k{i}")))
            await asyncio.sleep(0)
        assert len(store.calls) == 1
        store.gate.set()
        assert await asyncio.gather(first, *later) == [b"v"] * 10

    asyncio.run(run())
    assert store.calls == [["k0"], [f"k{i}" for i in range(1, 10)]]


def test_max_batch_splits_a_burst() -> None:
    store = Store({f"k{i}": b"v" for i in range(10)})

    async def run() -> None:
        reads = BatchedReads(store.fetch, max_in_flight=4, max_batch=4)
        assert await asyncio.gather(*(reads.get(f"k{i}") for i in range(10))) == [b"v"] * 10

    asyncio.run(run())
    assert [len(c) for c in store.calls] == [4, 4, 2]


def test_an_unavailable_store_is_a_miss_for_the_whole_batch() -> None:
    store = Store({"a": b"1", "b": b"2"})
    store.down = True

    async def run() -> list[bytes | None]:
        reads = BatchedReads(store.fetch)
        return await asyncio.gather(reads.get("a"), reads.get("b"))

    assert asyncio.run(run()) == [None, None]


def test_a_cancelled_reader_leaves_its_batch_alone() -> None:
    store = Store({"a": b"1", "b": b"2"})

    async def run() -> None:
        store.gate = asyncio.Event()
        reads = BatchedReads(store.fetch)
        a = asyncio.ensure_future(reads.get("a"))
        b = asyncio.ensure_future(reads.get("b"))
        await asyncio.sleep(0.01)
        a.cancel()
        store.gate.set()
        assert await b == b"2"
        with pytest.raises(asyncio.CancelledError):
            await a

    asyncio.run(run())


def test_a_failing_fetch_raises_in_every_reader_of_its_batch() -> None:
    async def broken(keys: Sequence[str]) -> list[bytes | None]:
        raise ValueError("boom")

    async def run() -> None:
        reads = BatchedReads(broken)
        results = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
        assert [type(r) for r in results] == [ValueError, ValueError]
        # ... and the next batch is sent as usual
        assert isinstance(
            (await asyncio.gather(reads.get("c"), return_exceptions=True))[0], ValueError
        )

    asyncio.run(run())


def test_close_cancels_waiting_reads() -> None:
    store = Store({"a": b"1"})

    async def run() -> None:
        store.gate = asyncio.Event()
        reads = BatchedReads(store.fetch, max_in_flight=1)
        held = asyncio.ensure_future(reads.get("a"))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(reads.get("a"))
        await asyncio.sleep(0.01)
        await reads.close()
        for reader in (held, queued):
            with pytest.raises(asyncio.CancelledError):
                await reader
        assert await reads.get("a") is None  # closed: a miss, never a wait

    asyncio.run(run())
