"""Diversity scores: how different are images drawn at the same place with different seeds?

The generated pairs are one canvas position under two seeds; the real analogue is two photos
cut at the same row offset. Pure numpy.
"""

from __future__ import annotations

import numpy as np


def pair_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over pairs of the L2 distance between rows of a and b (features [N, D])."""
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1).mean())


def pixel_pair_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference (in [0, 1] units) between paired uint8 images."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255.0)


def same_row_pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of real patches cut at the same row offset (the real analogue of one canvas
    position under two seeds)."""
    a, b = [], []
    for r in np.unique(rows):
        idx = np.flatnonzero(rows == r)
        a.extend(idx[0:-1:2])
        b.extend(idx[1::2])
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
