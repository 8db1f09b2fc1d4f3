"""Who still waits for a piece of work, how urgently and until when: shared by a single-flight
entry and the render-queue job it feeds, so either side sees the other's changes."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Priority(enum.IntEnum):
    INTERACTIVE = 0
    PREFETCH = 1


@dataclass(eq=False)
class Demand:
    """The best priority any waiter asked for, how many waiters are left, and the latest
    deadline (`time.monotonic()`) any of them still waits until; prefetch waits for ever."""

    priority: Priority
    waiters: int = 0
    deadline: float = math.inf

    def join(self, priority: Priority, deadline: float) -> None:
        """A waiter with this priority and deadline joined (the first one sets the deadline)."""
        self.deadline = deadline if self.waiters == 0 else max(self.deadline, deadline)
        self.waiters += 1
