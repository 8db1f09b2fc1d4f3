"""Synthetic image sets for the evaluation tests: landscape-like squares and known distortions
of them, so a distance can be checked to grow with the distortion."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def landscapes(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3]: sky over ground at random heights and colours, plus texture."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.float64)
    rows = np.arange(size)[:, None, None]
    for i in range(n):
        horizon = rng.integers(size // 4, 3 * size // 4)
        sky = rng.uniform([40, 90, 170], [110, 170, 250])
        ground = rng.uniform([20, 80, 20], [110, 180, 90])
        out[i] = np.where(rows < horizon, sky, ground) + rng.normal(0, 8, (size, size, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def add_noise(images: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


def blur(images: np.ndarray, radius: int) -> np.ndarray:
    if radius == 0:
        return images
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    k = 2 * radius + 1
    y = F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)
    return y.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
