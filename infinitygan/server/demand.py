"""Who still waits for a piece of work, and how urgently: shared by a single-flight entry and the
render-queue job it feeds, so either side sees the other's changes."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Priority(enum.IntEnum):
    INTERACTIVE = 0
    PREFETCH = 1


@dataclass(eq=False)
class Demand:
    """The best priority any waiter asked for, and how many waiters are left."""

    priority: Priority
    waiters: int = 0
