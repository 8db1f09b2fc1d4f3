"""What every benchmark reports about the machine (CPU model and vector flags: figures compare
only within one machine), and pausing a process (the trainer, typically) while it measures,
always resuming it: the benchmarks share a 2-core machine with training runs."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


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


def cpu_name() -> str:
    """lscpu's model name (falls back to /proc/cpuinfo)."""
    with suppress(OSError, subprocess.CalledProcessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    flags = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
    return ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags)
