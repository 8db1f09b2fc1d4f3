"""Render any rectangle of the infinite canvas for a seed: (generator, seed, rect) -> uint8 pixels.

A rectangle becomes an aligned latent window (geometry.axis_window) whose z_l cells, coordinates
and noise maps are all read from the seeded hash at their global positions; one valid-padding
forward pass then yields the window's pixels, cropped to the rectangle. Because nothing depends
on where a window starts or what else is in the batch, a region rendered in one pass equals the
same region assembled from tiles (to float rounding), which is the seamlessness contract.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from . import geometry
from .config import GeneratorConfig
from .coords import coord_grid
from .latents import check_seed, global_latent, local_latent, noise_map
from .networks import Generator

MAX_COORD = 2**50  # canvas pixels; tiles at |x| = 2**31 at zoom N are at 2**39
MAX_REGION_PIXELS = 2**28  # 268 Mpx = 805 MB of uint8 RGB: refuse anything larger


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Rect:
    """Canvas pixels [x, x + width) x [y, y + height); y grows downwards, 0 is the horizon."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, _check_int(name, getattr(self, name)))
        if self.width < 1 or self.height < 1:
            raise ValueError(f"width and height must be >= 1, got {self.width}x{self.height}")
        if self.width * self.height > MAX_REGION_PIXELS:
            raise ValueError(
                f"{self.width}x{self.height} is {self.width * self.height} px; "
                f"at most {MAX_REGION_PIXELS} px can be rendered at once"
            )
        spans = (("x", self.x, self.x + self.width), ("y", self.y, self.y + self.height))
        for name, lo, hi in spans:
            if lo < -MAX_COORD or hi > MAX_COORD:
                raise ValueError(f"{name} range [{lo}, {hi}) is beyond +-2**50 canvas pixels")


@dataclass(frozen=True)
class _Window:
    rows: geometry.AxisWindow
    cols: geometry.AxisWindow

    @property
    def shape_key(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.rows.n_cells,
            self.cols.n_cells,
            self.rows.crop,
            self.cols.crop,
            self.rows.length,
            self.cols.length,
        )


def _window(cfg: GeneratorConfig, rect: Rect) -> _Window:
    ppc = cfg.pixels_per_cell
    return _Window(
        geometry.axis_window(rect.y, rect.height, ppc),
        geometry.axis_window(rect.x, rect.width, ppc),
    )


def window_inputs(
    cfg: GeneratorConfig, seed: int, window: _Window
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Hashed inputs of one window: z_g [Z], z_l [Cl, H, W], coords [3, H, W], noise [[1, h, w]]."""
    r0, nr = geometry.structure_input_cells(window.rows, cfg)
    c0, nc = geometry.structure_input_cells(window.cols, cfg)
    z_global = global_latent(seed, cfg.z_dim)
    z_local = local_latent(seed, r0, c0, nr, nc, cfg.z_local_dim)
    coords = coord_grid(r0, c0, nr, nc, cfg.coord_vertical_scale, cfg.coord_period_cells)
    sizes_r = geometry.texture_layer_sizes(window.rows.n_cells, cfg.n_up)
    sizes_c = geometry.texture_layer_sizes(window.cols.n_cells, cfg.n_up)
    noise = [
        noise_map(seed, layer, idx.start(window.rows.cell0), idx.start(window.cols.cell0), hr, hc)[
            None
        ]
        for layer, (idx, hr, hc) in enumerate(
            zip(geometry.texture_layer_index(cfg.n_up), sizes_r, sizes_c, strict=True)
        )
    ]
    return z_global, z_local, coords, noise


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8."""
    x = ((rgb.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class CanvasRenderer:
    """Renders equally sized canvas rectangles with one generator: `renderer(jobs)` with jobs
    [(seed, Rect)] -> uint8 [B, H, W, 3]. The tile server's render worker, and what
    `render_batch` and `render_region` run.

    It owns how a batch meets the hardware (the generator itself has no serving policy): on CPU
    every window is its own batch-1 pass with the fused kernels, which is as fast per pixel as a
    batch and skips the activation-sized modulation passes; on an accelerator a group of windows
    is one batched pass, and a lone window takes the fused kernels. Both kernels compute the same
    values (tests/model/test_networks.py), so the choice changes speed, not pixels.
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @torch.inference_mode()
    def __call__(self, jobs: Sequence[tuple[int, Rect]]) -> np.ndarray:
        """Render equally sized rectangles (any seeds, any positions).

        Rectangles whose latent windows have the same shape share one forward pass (tiles of a
        metatile grid always do); others are grouped.
        """
        if not jobs:
            raise ValueError("a render needs at least one (seed, rect)")
        sizes = {(rect.height, rect.width) for _, rect in jobs}
        if len(sizes) != 1:
            raise ValueError(f"a render needs rectangles of one size, got {sorted(sizes)}")
        cfg = self.generator.cfg
        windows = [(check_seed(seed), _window(cfg, rect)) for seed, rect in jobs]
        height, width = sizes.pop()
        out = np.empty((len(jobs), height, width, 3), dtype=np.uint8)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (_, w) in enumerate(windows):
            groups.setdefault(w.shape_key, []).append(i)
        for idx in groups.values():
            out[idx] = self._render_group([windows[i] for i in idx])
        return out

    def _render_group(self, jobs: Sequence[tuple[int, _Window]]) -> np.ndarray:
        """Windows of one shape: stack their hashed inputs, run the generator, crop."""
        cfg = self.generator.cfg
        device = next(self.generator.parameters()).device
        inputs = [window_inputs(cfg, seed, w) for seed, w in jobs]
        cl = torch.channels_last

        def stack(i: int) -> torch.Tensor:
            return torch.stack([inp[i] for inp in inputs]).to(device)

        z_global = stack(0)
        z_local = stack(1).contiguous(memory_format=cl)
        coords = stack(2).contiguous(memory_format=cl)
        noise = [
            torch.stack([inp[3][layer] for inp in inputs]).to(device).contiguous(memory_format=cl)
            for layer in range(2 * cfg.n_up)
        ]
        rgb = self._forward(z_global, z_local, coords, noise)
        rows, cols = jobs[0][1].rows, jobs[0][1].cols
        rgb = rgb[:, :, rows.crop : rows.crop + rows.length, cols.crop : cols.crop + cols.length]
        return to_uint8(rgb)

    def _forward(
        self,
        z_global: torch.Tensor,
        z_local: torch.Tensor,
        coords: torch.Tensor,
        noise: list[torch.Tensor],
    ) -> torch.Tensor:
        """The kernel choice and the per-sample split described in the class docstring."""
        g = self.generator
        batch = z_global.shape[0]
        if batch > 1 and z_global.device.type != "cpu":
            return g(z_global, z_local, coords, noise=noise, impl="batched")
        parts = [
            g(
                z_global[i : i + 1],
                z_local[i : i + 1],
                coords[i : i + 1],
                noise=[n[i : i + 1] for n in noise],
                impl="fused",
            )
            for i in range(batch)
        ]
        return parts[0] if batch == 1 else torch.cat(parts)


def render_batch(generator: Generator, jobs: Sequence[tuple[int, Rect]]) -> np.ndarray:
    """Render equally sized rectangles (any seeds, any positions): [B, H, W, 3] uint8
    (see CanvasRenderer)."""
    return CanvasRenderer(generator)(jobs)


def default_chunk(cfg: GeneratorConfig, budget_bytes: int = 2**29) -> int:
    """Largest chunk side (a multiple of the cell size) whose widest full-resolution activation
    (channels x side^2 float32, x4 for the buffers alive at once around the last up-conv) stays
    within `budget_bytes`."""
    per_px = 4 * 4 * cfg.texture_channels[-1]
    side = int(math.sqrt(budget_bytes / per_px))
    ppc = cfg.pixels_per_cell
    return max(ppc, min(2048, side // ppc * ppc))


def render_region(
    generator: Generator,
    seed: int,
    rect: Rect,
    max_chunk: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Render a rectangle of any size as [H, W, 3] uint8 in chunks of at most max_chunk px per
    side, so memory is bounded by the chunk, not the region."""
    if max_chunk is None:
        max_chunk = default_chunk(generator.cfg)
    chunk = _check_int("max_chunk", max_chunk)
    if chunk < 1:
        raise ValueError(f"max_chunk must be >= 1, got {chunk}")
    check_seed(seed)
    render = CanvasRenderer(generator)
    out = np.empty((rect.height, rect.width, 3), dtype=np.uint8)
    cells = [(dy, dx) for dy in range(0, rect.height, chunk) for dx in range(0, rect.width, chunk)]
    for dy, dx in tqdm(cells, desc="render", unit="chunk", disable=not progress):
        h, w = min(chunk, rect.height - dy), min(chunk, rect.width - dx)
        part = render([(seed, Rect(rect.x + dx, rect.y + dy, w, h))])
        out[dy : dy + h, dx : dx + w] = part[0]
    return out


def downsample_2x(img: np.ndarray) -> np.ndarray:
    """Exact 2x2 area average of uint8 [2H, 2W, C] -> [H, W, C] ((sum + 2) // 4): the zoom-out
    rule, so a parent tile equals the downsample of its four children bit for bit."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[0] % 2 or img.shape[1] % 2:
        raise ValueError(f"downsample_2x needs uint8 [2H, 2W, C], got {img.dtype} {img.shape}")
    s = img.astype(np.uint16)
    total = s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)
