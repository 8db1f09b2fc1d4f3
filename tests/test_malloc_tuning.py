"""The allocator settings the entry points apply: glibc takes them, and a warm renderer then
takes its buffers from the heap instead of faulting in fresh pages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's mallopt",
)


@glibc_only
def test_glibc_takes_the_keep_freed_memory_settings() -> None:
    """In a fresh process (the setting is process-wide): both mallopt calls succeed, and a
    second call is harmless."""
    code = (
        "from infinitygan.malloc_tuning import keep_freed_memory\n"
        "print(keep_freed_memory(), keep_freed_memory())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


@glibc_only
def test_glibc_takes_the_keep_render_memory_settings() -> None:
    """In a fresh process (the setting is process-wide): both mallopt calls succeed, a second
    call is harmless, and once the heap has grown to the render's high-water mark (a few
    renders) a render takes its buffers from it instead of faulting in fresh pages (~28,000
    minor faults per render without the setting)."""
    code = (
        "import resource\n"
        "from infinitygan.malloc_tuning import keep_render_memory\n"
        "from infinitygan.model.canvas import Rect, render_batch\n"
        "from infinitygan.model.config import preset\n"
        "from infinitygan.model.networks import Generator\n"
        "print(keep_render_memory(), keep_render_memory())\n"
        "g = Generator(preset('tiny').generator).eval()\n"
        "job = [(1, Rect(0, 0, 1024, 1024))]\n"
        "faults = []\n"
        "for _ in range(6):\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    render_batch(g, job)\n"
        "    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
        "print(min(faults[2:]))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    took, faults = out.stdout.splitlines()
    assert took.split() == ["True", "True"]
    assert int(faults) < 500, faults
