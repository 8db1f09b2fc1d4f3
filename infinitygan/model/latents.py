"""Latents from a seeded, counter-based hash of global integer coordinates (a contract).

Every random number the renderer uses (z_g, each z_l cell channel, each noise value) is
`N(0,1)`-distributed and a pure function of (seed, stream, integer coordinates). Nothing depends
on render order or batch composition, and only the requested window is ever materialised.

The hash is the splitmix64 finalizer chained over the stream and the coordinates (numpy uint64
arithmetic wraps modulo 2**64 by definition); the top 53 bits become a uniform in (0, 1) mapped
through the inverse normal CDF.
"""

from __future__ import annotations

import numpy as np
import torch

from ..bounds import MAX_SEED

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ODD = np.uint64(0xD6E8FEB86659FD93)  # odd, so h -> h * _ODD is a bijection
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))

# Streams keep z_g, z_l, the biome anchors and each noise layer independent of each other.
STREAM_GLOBAL = 1
STREAM_LOCAL = 2
STREAM_ANCHOR = 3  # a biome anchor's global latent (anchor index, channel)
STREAM_ANCHOR_JITTER = 4  # a biome anchor's position jitter (anchor index)
STREAM_NOISE = 16  # + layer index


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a bijection on uint64 with full avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _as_u64(values: np.ndarray | int) -> np.ndarray:
    """Two's-complement view of signed integer coordinates (negative positions are fine)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) < MAX_SEED:
        raise ValueError(f"seed must satisfy 0 <= seed < 2**63, got {seed}")
    return int(seed)


def hash_uniform(seed: int, stream: int, *coords: np.ndarray | int) -> np.ndarray:
    """Uniform float64 values in (0, 1), never 0 or 1, for the broadcast grid of integer
    `coords` (outermost first)."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2**64 on purpose
        h = _mix(_as_u64([check_seed(seed)]) + _GOLDEN)
        for axis in ([stream], *coords):
            # h * odd + mix(a) is not symmetric in (h, a): h ^ mix(a) was, so the state of
            # (seed s, stream 1) cancelled coordinate s to 0 (z_g[s] = -8.3 for every seed)
            h = _mix(h * _ODD + _mix(_as_u64(axis) + _GOLDEN))
    bits = (h >> _S11).astype(np.float64)  # 53 random bits
    return (bits + 0.5) * (1.0 / 2**53)


def hash_normal(seed: int, stream: int, *coords: np.ndarray | int) -> torch.Tensor:
    """N(0,1) float32 values for the broadcast grid of integer `coords` (outermost first)."""
    uniform = torch.from_numpy(hash_uniform(seed, stream, *coords))
    return torch.special.ndtri(uniform).to(torch.float32)


def global_latent(seed: int, dim: int) -> torch.Tensor:
    """z_g: [dim], derived from the seed alone."""
    return hash_normal(seed, STREAM_GLOBAL, np.arange(dim))


def local_latent(seed: int, row0: int, col0: int, rows: int, cols: int, dim: int) -> torch.Tensor:
    """z_l for latent cells [row0, row0+rows) x [col0, col0+cols): [dim, rows, cols]."""
    r = np.arange(row0, row0 + rows, dtype=np.int64)[:, None]
    c = np.arange(col0, col0 + cols, dtype=np.int64)[None, :]
    ch = np.arange(dim, dtype=np.int64)[:, None, None]
    return hash_normal(seed, STREAM_LOCAL, r[None], c[None], ch)


def noise_map(seed: int, layer: int, row0: int, col0: int, rows: int, cols: int) -> torch.Tensor:
    """Noise of one G_T layer at global features [row0, +rows) x [col0, +cols): [rows, cols]."""
    r = np.arange(row0, row0 + rows, dtype=np.int64)[:, None]
    c = np.arange(col0, col0 + cols, dtype=np.int64)[None, :]
    return hash_normal(seed, STREAM_NOISE + layer, r, c)
