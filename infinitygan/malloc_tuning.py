"""glibc malloc settings for the two workloads that allocate activation-sized buffers in a loop.

By default glibc maps every large buffer with mmap and unmaps it on free, and trims the top of
its heap, so a training iteration or a render faults the same memory in page by page, over and
over. Both settings are process-wide, so the entry points apply them (the training loop, the
tile server, `infinitygan render`), never the library code that merely renders or trains.
"""

from __future__ import annotations

import ctypes

# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 30


def _mallopt(*settings: tuple[int, int]) -> bool:
    """Apply (param, value) pairs; whether the C library took every one (a no-op, False, where
    it has no mallopt)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all([mallopt(param, value) == 1 for param, value in settings])


def keep_freed_memory() -> bool:
    """Training: keep freed memory for reuse, with buffers above 32 MiB still mapped.

    An iteration allocates and frees hundreds of activation-sized buffers (up to ~9 MB for
    `small`): ~25,000 minor page faults and ~60 ms of kernel time per `small` iteration on one
    core by default. A fixed 32 MiB mmap threshold and a 1 GiB trim threshold leave a few
    hundred (peak RSS +2%)."""
    return _mallopt((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def keep_render_memory() -> bool:
    """Rendering: serve every buffer from the heap and keep it for the next render.

    A 1024-px `small` metatile allocates and frees buffers of up to 136 MB, above any mmap
    threshold glibc accepts (at most 32 MiB): 220,000 minor page faults per metatile, a quarter
    of its time (1 thread, AMD EPYC, KVM). Without mmap (M_MMAP_MAX 0) and with a 1 GiB trim
    threshold the renderer reuses the same memory from render to render (no faults once warm),
    at the cost of holding its high-water mark between renders: ~1.05 GB resident after 1024-px
    metatiles instead of ~0.55 GB, steady over mixed sizes, and 10-25% more peak RSS for a
    chunked `render_region`."""
    return _mallopt((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
