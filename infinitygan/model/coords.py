"""Coordinate features of the structure synthesizer, from integer global latent cells.

Three channels per cell: tanh(scale * (row + 0.5)) for the vertical position (row 0 is just
below the horizon; far rows saturate to pure sky / pure ground), and cos, sin of the column's
phase on a horizontal period of `period` cells. The phase is reduced with exact integer modulo
before any float is formed, so column 2**40 is as precise as column 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def horizontal_phase(cols: np.ndarray, period: int) -> np.ndarray:
    return (2.0 * math.pi / period) * np.mod(cols.astype(np.int64), period).astype(np.float64)


def coord_grid(
    row0: int,
    col0: int,
    rows: int,
    cols: int,
    scale: float,
    period: int,
    row_shift: float = 0.0,
    col_shift: float = 0.0,
) -> torch.Tensor:
    """[3, rows, cols] float32 coordinates of cells [row0, +rows) x [col0, +cols).

    `row_shift` / `col_shift` (fractions of a cell) are the training-time jitter; the renderer
    leaves them at 0.
    """
    r = np.arange(row0, row0 + rows, dtype=np.int64)
    c = np.arange(col0, col0 + cols, dtype=np.int64)
    v = np.tanh(scale * (r.astype(np.float64) + 0.5 + row_shift))[:, None]
    phase = (horizontal_phase(c, period) + 2.0 * math.pi * col_shift / period)[None, :]
    grid = np.stack(np.broadcast_arrays(v, np.cos(phase), np.sin(phase)), axis=0)  # [3, rows, cols]
    return torch.from_numpy(grid.astype(np.float32))
