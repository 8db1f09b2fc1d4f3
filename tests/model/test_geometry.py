"""The size chain of geometry.py against a brute-force simulation and the real networks.

The simulation is an independent 1-D re-implementation of G_T's padding-free chain (literal
transposed conv, crop, blur, valid conv, a nonlinearity) fed with a signal that is a function of
the global cell index. Running it on many windows and keying every output by the global index
that `texture_layer_index` claims proves the sizes and the indexing at once: if either were off,
two windows would disagree about the same global feature.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infinitygan.model import geometry
from infinitygan.model.config import PRESETS, GeneratorConfig
from infinitygan.model.networks import Generator, StructureSynthesizer

_CELL_VALUES = np.random.default_rng(0).standard_normal(1000)


def _cell_signal(c0: int, n: int) -> torch.Tensor:
    """A fixed random value per global cell (cells -500..499), as a [1, 1, n] float64 signal."""
    return torch.from_numpy(_CELL_VALUES[500 + c0 : 500 + c0 + n]).view(1, 1, n)


def _simulate_1d(x: torch.Tensor, n_up: int, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """Literal 1-D G_T chain; returns every modulated conv's output (noise-map order)."""
    outs = []
    blur = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64).view(1, 1, 3) / 4 * 2
    for i in range(n_up):
        x = F.conv_transpose1d(x, weights[2 * i], stride=2)  # H -> 2H+1
        x = x[:, :, 1:-1]  # -> 2H-1
        x = torch.tanh(F.conv1d(x, blur))  # -> 2H-3
        outs.append(x)
        x = torch.tanh(F.conv1d(x, weights[2 * i + 1]))  # -> 2H-5
        outs.append(x)
    return outs


@pytest.mark.parametrize("n_up", [1, 2, 3, 4])
def test_texture_chain_matches_brute_force(n_up: int) -> None:
    rng = torch.Generator().manual_seed(n_up)
    weights = [torch.randn(1, 1, 3, generator=rng, dtype=torch.float64) for _ in range(2 * n_up)]
    index = geometry.texture_layer_index(n_up)
    assert len(index) == 2 * n_up
    seen: list[dict[int, float]] = [{} for _ in range(2 * n_up)]
    overlaps = 0
    for c0, n in itertools.product(range(-9, 9, 2), range(5, 10)):
        outs = _simulate_1d(_cell_signal(c0, n), n_up, weights)
        sizes = [o.shape[-1] for o in outs]
        assert sizes == geometry.texture_layer_sizes(n, n_up), (c0, n)
        assert sizes[-1] == geometry.texture_output_size(n, n_up)
        for layer, (out, idx) in enumerate(zip(outs, index, strict=True)):
            assert idx.scale == 2 ** (layer // 2 + 1)
            for j, v in enumerate(out.flatten().tolist()):
                g = idx.start(c0) + j
                if g in seen[layer]:
                    overlaps += 1
                    assert seen[layer][g] == pytest.approx(v, abs=1e-12), (layer, c0, n, j)
                seen[layer][g] = v
    assert overlaps > 500  # the windows really overlap, so the check is not vacuous


def test_texture_output_size_closed_form() -> None:
    for n_up, n in itertools.product(range(0, 6), range(5, 40)):
        h = n
        for _ in range(n_up):
            h = 2 * h - 5  # up-block then plain conv, each valid
        assert geometry.texture_output_size(n, n_up) == h
    # one more cell always adds exactly 2**k pixels: the shift-equivariance the canvas needs
    assert geometry.texture_output_size(6, 4) - geometry.texture_output_size(5, 4) == 16
    with pytest.raises(ValueError, match="at least 5 cells"):
        geometry.texture_output_size(4, 3)


def _min_cells_brute(crop: int, length: int, ppc: int) -> int:
    n = geometry.TEXTURE_MARGIN
    while ppc * (n - geometry.TEXTURE_MARGIN) + geometry.TEXTURE_MARGIN < crop + length:
        n += 1
    return n


@pytest.mark.parametrize("ppc", [2, 8, 16])
def test_axis_window_brute_force(ppc: int) -> None:
    for p0, length in itertools.product(range(-70, 70), [1, 2, 3, 5, 7, 16, 17, 40, 256]):
        w = geometry.axis_window(p0, length, ppc)
        assert w.cell0 * ppc + w.crop == p0  # output pixel j is canvas pixel ppc * cell0 + j
        assert 0 <= w.crop < ppc
        assert w.length == length
        out = ppc * (w.n_cells - geometry.TEXTURE_MARGIN) + geometry.TEXTURE_MARGIN
        assert w.crop + length <= out  # the span fits in the window's output ...
        assert w.n_cells == _min_cells_brute(w.crop, length, ppc)  # ... which is minimal


def test_axis_window_huge_coordinates_and_errors() -> None:
    for p0 in (2**39 + 3, -(2**39) - 3, -(2**50)):
        w = geometry.axis_window(p0, 256, 16)
        assert w.cell0 * 16 + w.crop == p0 and 0 <= w.crop < 16
    with pytest.raises(ValueError, match="positive"):
        geometry.axis_window(0, 0, 8)
    with pytest.raises(ValueError, match="too long"):
        geometry.axis_window(0, 8 * geometry.MAX_WINDOW_CELLS, 8)


def test_structure_input_cells_matches_g_s() -> None:
    cfg = PRESETS["tiny"].generator
    m = geometry.structure_margin(cfg)
    assert m == cfg.structure_layers * cfg.structure_radius
    g_s = StructureSynthesizer(cfg).eval()
    for p0, length in [(-37, 30), (0, 8), (5, 1), (-256, 256)]:
        w = geometry.axis_window(p0, length, cfg.pixels_per_cell)
        c0, n = geometry.structure_input_cells(w, cfg)
        assert (c0, n) == (w.cell0 - m, w.n_cells + 2 * m)
        z_l = torch.randn(1, cfg.z_local_dim, n, n + 2)
        coords = torch.randn(1, 3, n, n + 2)
        with torch.no_grad():
            z_s = g_s(torch.randn(1, cfg.z_dim), z_l, coords)
        assert z_s.shape[2:] == (w.n_cells, w.n_cells + 2)  # G_S eats exactly the margin


@pytest.mark.parametrize("grad", [False, True])
def test_generator_output_shape(grad: bool) -> None:
    """G's real output (and its noise inputs) have the sizes geometry predicts, for the fused
    (no-grad, batch 1) and the batched path, on non-square windows."""
    cfg = GeneratorConfig(
        z_dim=8,
        z_local_dim=4,
        n_mapping=1,
        structure_channels=8,
        structure_layers=2,
        structure_radius=1,
        texture_channels=(8, 8),
    )
    g = Generator(cfg).eval().requires_grad_(False)
    m = geometry.structure_margin(cfg)
    batch = 2 if grad else 1
    for nr, nc in [(5, 5), (6, 9), (11, 7)]:
        noise = [
            torch.randn(batch, 1, hr, hc)
            for hr, hc in zip(
                geometry.texture_layer_sizes(nr, cfg.n_up),
                geometry.texture_layer_sizes(nc, cfg.n_up),
                strict=True,
            )
        ]
        with torch.set_grad_enabled(grad):
            rgb = g(
                torch.randn(batch, cfg.z_dim),
                torch.randn(batch, cfg.z_local_dim, nr + 2 * m, nc + 2 * m),
                torch.randn(batch, 3, nr + 2 * m, nc + 2 * m),
                noise=noise,
            )
        assert rgb.shape == (
            batch,
            3,
            geometry.texture_output_size(nr, cfg.n_up),
            geometry.texture_output_size(nc, cfg.n_up),
        )
