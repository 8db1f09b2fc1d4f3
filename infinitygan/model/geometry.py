"""Exact integer size arithmetic of the padding-free generator (the only place it lives).

G_T maps n latent cells to 2**k * (n - 5) + 5 pixels along each axis (k up-blocks):

    up-block:   H -> transposed 3x3 stride 2 -> 2H+1 -> crop 1 -> 2H-1 -> blur [1,2,1] -> 2H-3
    plain conv: H -> 3x3 valid -> H-2

so each block maps H -> 2H-5 and shifting the input by one cell shifts every layer by exactly
2**l features. G_S adds `structure_layers * structure_radius` cells of margin on every side.

Every feature map is indexed globally: feature j of a layer whose window starts at latent cell c0
sits at global position `scale * c0 + offset + j`. Noise is hashed from that global position,
which is what makes tiles, metatiles and any batch produce identical pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import GeneratorConfig

TEXTURE_MARGIN = 5  # the "+5" of 2**k * (n - 5) + 5: pixels of context no window can avoid
MAX_WINDOW_CELLS = 1 << 16  # a sanity bound on one forward pass (65536 cells per axis)


def check_int(name: str, value: object) -> int:
    """A Python or numpy integer argument as int; bools and floats are refused, not rounded."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def texture_output_size(n_cells: int, n_up: int) -> int:
    """Pixels produced along one axis by G_T from `n_cells` latent cells."""
    if n_cells < TEXTURE_MARGIN:
        raise ValueError(f"G_T needs at least {TEXTURE_MARGIN} cells, got {n_cells}")
    return 2**n_up * (n_cells - TEXTURE_MARGIN) + TEXTURE_MARGIN


def texture_layer_sizes(n_cells: int, n_up: int) -> list[int]:
    """Output size of each of the 2k modulated convs of G_T (noise maps have these sizes)."""
    sizes = []
    h = n_cells
    for _ in range(n_up):
        h = 2 * h - 3  # up-conv
        sizes.append(h)
        h = h - 2  # plain 3x3 conv
        sizes.append(h)
    assert h == texture_output_size(n_cells, n_up)
    return sizes


@dataclass(frozen=True)
class LayerIndex:
    """Feature j of this layer is global position scale * c0 + offset + j."""

    scale: int
    offset: int

    def start(self, cell0: int) -> int:
        return self.scale * cell0 + self.offset


def texture_layer_index(n_up: int) -> list[LayerIndex]:
    """Global indexing of each G_T conv output (same order as `texture_layer_sizes`)."""
    out = []
    scale, offset = 1, 0
    for _ in range(n_up):
        # transposed output o = 2i + t has global 2*g_in + t; layer index j = o - 2
        scale, offset = 2 * scale, 2 * offset + 2
        out.append(LayerIndex(scale, offset))
        offset += 1  # valid 3x3: output j is centred on input j + 1
        out.append(LayerIndex(scale, offset))
    return out


def structure_margin(cfg: GeneratorConfig) -> int:
    """Cells of z_l needed beyond G_T's input window on each side."""
    return cfg.structure_layers * cfg.structure_radius


@dataclass(frozen=True)
class AxisWindow:
    """Latent window that covers the pixel span [p0, p0 + length) along one axis.

    G_T's input is cells [cell0, cell0 + n_cells); its output pixel j is canvas pixel
    pixels_per_cell * cell0 + j, so the span is output[crop : crop + length].
    """

    cell0: int
    n_cells: int
    crop: int
    length: int


def axis_window(p0: int, length: int, pixels_per_cell: int) -> AxisWindow:
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    cell0 = p0 // pixels_per_cell  # floor division: correct for negative p0
    crop = p0 - pixels_per_cell * cell0
    need = crop + length - TEXTURE_MARGIN
    n_cells = TEXTURE_MARGIN + max(0, -(-need // pixels_per_cell))
    if n_cells > MAX_WINDOW_CELLS:
        raise ValueError(f"a span of {length} px is too long for one forward pass")
    return AxisWindow(cell0=cell0, n_cells=n_cells, crop=crop, length=length)


def structure_input_cells(window: AxisWindow, cfg: GeneratorConfig) -> tuple[int, int]:
    """(first cell, count) of the z_l lattice that G_S needs for this window."""
    m = structure_margin(cfg)
    return window.cell0 - m, window.n_cells + 2 * m


def canvas_columns(first: int, count: int, scale: int, n_up: int) -> np.ndarray:
    """Canvas x [count] (int64) of global features first .. first + count - 1 of a layer whose
    features are `scale` per latent cell (1: latent cells; 2**n_up: output pixels).

    Feature g covers final-layer indices [g * 2**n_up / scale, (g + 1) * 2**n_up / scale), and
    final index f is canvas pixel f - (the last layer's offset); this is that span's centre,
    rounded down: where a world's style is evaluated for the feature (biome weights vary over
    hundreds of pixels, so the rounding does not show, but it is the same for every window)."""
    span = 2**n_up // scale
    offset = texture_layer_index(n_up)[-1].offset
    g = np.arange(first, first + count, dtype=np.int64)
    return g * span + span // 2 - offset
