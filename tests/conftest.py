"""Shared fixtures: tiny generators whose random weights exercise every term.

A freshly initialised generator has zero noise strengths and zero biases, so a test that
compares two renders would pass even if noise were hashed at the wrong position or a bias were
dropped. `nontrivial_generator` turns those terms on and scales ToRGB down so the uint8 output
spans the range without saturating (a clipped image hides differences too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infinitygan.model.config import PRESETS
from infinitygan.model.networks import Generator

# Tiny-model tensors gain nothing from intra-op threads, while on a shared 2-core machine (CI
# next to a training job or a server) OpenMP barriers made the 2-thread suite ~10x slower
# (test_canvas.py: 111 s vs 11 s at load average 8). Results do not depend on the thread count
# (every comparison is within one process).
torch.set_num_threads(1)


def randomise_terms(module: torch.nn.Module, seed: int, bias_scale: float = 0.2) -> None:
    """Turn on every noise injection (strength 0.3) and give every bias a random value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
            elif name.endswith("bias"):
                p.add_(bias_scale * torch.randn(p.shape, generator=gen))


def nontrivial_generator(preset: str = "tiny", seed: int = 0) -> Generator:
    """Random weights with noise strength 0.3, random biases, ToRGB scaled to avoid clipping."""
    torch.manual_seed(seed)
    g = Generator(PRESETS[preset].generator)
    randomise_terms(g, seed)
    with torch.no_grad():
        for to_rgb in g.texture.to_rgbs:
            to_rgb.weight.mul_(0.15)
    return g.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_g() -> Generator:
    """Session-wide tiny generator; tests must not modify it."""
    return nontrivial_generator("tiny", 0)


def assert_close_uint8(a: np.ndarray, b: np.ndarray, max_diff: int = 1) -> None:
    """The seamlessness contract: identical uint8 up to `max_diff` levels of float rounding."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == np.uint8 and b.dtype == np.uint8
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert int(diff.max()) <= max_diff, (
        f"max diff {diff.max()} at {np.argwhere(diff > max_diff)[:5]}"
    )


def assert_informative(img: np.ndarray) -> None:
    """Guard against vacuous comparisons: the image varies and is mostly unclipped."""
    assert img.std() > 10, img.std()
    assert ((img == 0) | (img == 255)).mean() < 0.05


def write_landscapes(folder: Path, n: int = 6, size: tuple[int, int] = (100, 64)) -> Path:
    """Blue sky over green ground, horizon at a random height, plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        img = np.empty((h, w, 3), dtype=np.float64)
        horizon = int(rng.integers(h // 3, 2 * h // 3))
        img[:horizon] = (70, 130, 220)
        img[horizon:] = (50, 150, 60)
        img += rng.normal(0, 15, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return folder
