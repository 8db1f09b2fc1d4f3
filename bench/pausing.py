"""Pause a process (the trainer, typically) while a benchmark measures, and always resume it:
the benchmarks share a 2-core machine with training runs."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress


@contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """SIGSTOP `pid` (if alive) for the duration; always SIGCONT it."""
    if pid is not None:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            pid = None
    if pid is None:
        yield
        return

    def resume_and_exit(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, resume_and_exit)
    os.kill(pid, signal.SIGSTOP)
    print(f"# paused pid {pid} for the measurements")
    try:
        yield
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        signal.signal(signal.SIGTERM, old)
        print(f"# resumed pid {pid}")
