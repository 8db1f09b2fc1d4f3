"""bench/gpu_check.sh where there is no CUDA (CUDA_VISIBLE_DEVICES hides any GPU, so this holds on
a GPU machine too): one "skipped" line and exit 0, in seconds, so CI and CPU-only runs of the
GPU check pass instead of failing or measuring the wrong device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"


def test_gpu_check_skips_cleanly_without_cuda() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "skipped: no CUDA device (torch.cuda.is_available() is False)"
    ]
