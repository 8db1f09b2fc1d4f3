"""Coordinates from integer cells: exact periodic reduction (so far tiles are as seamless as
tiles near 0) and a vertical coordinate that saturates to sky / ground."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infinitygan.model.coords import coord_grid, horizontal_phase


def _vertical(rows: list[int], scale: float) -> np.ndarray:
    """Vertical channel of single-cell grids at each row (float32, as the network sees it)."""
    return np.array([float(coord_grid(r, 0, 1, 1, scale, 16)[0, 0, 0]) for r in rows])


@pytest.mark.parametrize("period", [16, 64, 139])
@pytest.mark.parametrize("col", [0, -5, 1234, 2**31, -(2**35) + 3, 2**40, 2**40 + 77])
def test_period_reduction_is_exact(period: int, col: int) -> None:
    ref = coord_grid(-3, col, 4, 2 * period + 3, 0.5, period)
    for k in (1, -1, 3, 2**20, -(2**25)):
        shifted = coord_grid(-3, col + k * period, 4, 2 * period + 3, 0.5, period)
        assert torch.equal(ref, shifted), (col, k)
    # within one grid, column c and c + period are bit-identical too
    assert torch.equal(ref[:, :, :period], ref[:, :, period : 2 * period])


def test_far_columns_match_the_origin_bit_for_bit() -> None:
    period = 139
    near = coord_grid(0, 0, 1, period, 0.3, period)
    far = coord_grid(0, period * (2**40 // period), 1, period, 0.3, period)
    assert torch.equal(near, far)
    assert far[1:].abs().max() <= 1.0  # a lossy reduction would still be finite; exactness above


def test_horizontal_phase_is_reduced_to_one_period() -> None:
    cols = np.array([-(2**40) - 1, -1, 0, 1, 63, 64, 2**40], dtype=np.int64)
    phase = horizontal_phase(cols, 64)
    assert ((phase >= 0) & (phase < 2 * math.pi)).all()
    assert phase[1] == pytest.approx(2 * math.pi * 63 / 64)
    assert phase[2] == 0.0 and phase[5] == 0.0


def test_cos_sin_on_unit_circle_and_distinct_within_period() -> None:
    g = coord_grid(0, 0, 1, 64, 0.5, 64)
    assert torch.allclose(g[1] ** 2 + g[2] ** 2, torch.ones(1, 64), atol=1e-6)
    pairs = {
        (round(float(c), 5), round(float(s), 5)) for c, s in zip(g[1, 0], g[2, 0], strict=True)
    }
    assert len(pairs) == 64  # no column repeats inside one period


def test_vertical_coordinate_saturates_and_is_symmetric() -> None:
    v = _vertical([-(10**6), -(2**40), -100, -1, 0, 100, 2**40, 10**6], 0.5)
    assert v[0] == -1.0 and v[1] == -1.0 and v[-1] == 1.0 and v[-2] == 1.0  # sky up, ground down
    assert v[2] == pytest.approx(-1.0) and v[5] == pytest.approx(1.0)
    assert v[4] > 0 > v[3]  # row 0 is just below the horizon
    assert v[4] == pytest.approx(-v[3])  # rows -1 and 0 straddle it symmetrically
    assert (np.diff(_vertical(list(range(-50, 50)), 0.3)) >= 0).all()
    # a contiguous grid agrees with the single cells: the value depends on the row alone
    assert np.array_equal(
        coord_grid(-50, 7, 100, 1, 0.3, 16)[0, :, 0].numpy(),
        _vertical(list(range(-50, 50)), 0.3).astype(np.float32),
    )


def test_zero_training_jitter_is_the_renderer_grid() -> None:
    plain = coord_grid(-3, 2**33, 6, 9, 0.5, 64)
    assert torch.equal(plain, coord_grid(-3, 2**33, 6, 9, 0.5, 64, row_shift=0.0, col_shift=0.0))


def test_grid_layout() -> None:
    g = coord_grid(-4, 10, 5, 7, 0.5, 16)
    assert g.shape == (3, 5, 7) and g.dtype == torch.float32
    assert torch.equal(g[0], g[0, :, :1].expand(5, 7))  # vertical depends on the row only
    assert torch.equal(g[1:], g[1:, :1].expand(2, 5, 7))  # horizontal on the column only
    assert float(g[0, 0, 0]) == pytest.approx(math.tanh(0.5 * (-4 + 0.5)), abs=1e-7)
    assert float(g[1, 0, 0]) == pytest.approx(math.cos(2 * math.pi * 10 / 16), abs=1e-7)
