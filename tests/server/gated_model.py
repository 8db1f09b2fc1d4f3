"""A stand-in for the model worker's render function, for tests that control its timing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from infinitygan.model.canvas import Rect


class GatedModel:
    """Paints each rect with its seed (mod 256) and records each batch's seeds; blocks until
    the test opens `gate`, so work can be queued behind the batch in progress."""

    def __init__(self, seconds_per_job: float = 0.0, fail_x: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seconds_per_job = seconds_per_job  # how long a batch takes once the gate is open
        self.fail_x = fail_x  # a batch holding a rect at this x raises, like a failing model

    def __call__(self, jobs: Sequence[tuple[int, Rect]]) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(10), "test never released the model"
        time.sleep(self.seconds_per_job * len(jobs))
        self.batches.append([seed for seed, _ in jobs])
        if any(r.x == self.fail_x for _, r in jobs):
            raise RuntimeError(f"the model failed on x = {self.fail_x}")
        return np.stack([np.full((r.height, r.width, 3), seed % 256, np.uint8) for seed, r in jobs])


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.005)
