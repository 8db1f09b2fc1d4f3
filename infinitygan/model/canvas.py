"""Render any rectangle of the infinite canvas for a seed: (generator, seed, rect) -> uint8 pixels.

A rectangle becomes an aligned latent window (geometry.axis_window) whose z_l cells, coordinates
and noise maps are all read from the seeded hash at their global positions; one valid-padding
forward pass then yields the window's pixels, cropped to the rectangle. Because nothing depends
on where a window starts or what else is in the batch, a region rendered in one pass equals the
same region assembled from tiles (to float rounding), which is the seamlessness contract.

A `World` with biomes makes the global style a function of x as well (see world.py): the blend
weights of every column of every layer are evaluated at its global position, so they too are the
same whatever window reads them. A window inside one biome (one anchor with weight 1 over all of
it) renders exactly like a one-style world with that anchor's z_g; only windows that touch a
transition take the generator's spatial kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import geometry
from .config import GeneratorConfig
from .coords import coord_grid
from .latents import check_seed, global_latent, local_latent, noise_map
from .networks import Generator, StyleField
from .world import ONE_STYLE, World

MAX_COORD = 2**50  # canvas pixels; tiles at |x| = 2**31 at zoom N are at 2**39
MAX_REGION_PIXELS = 2**28  # 268 Mpx = 805 MB of uint8 RGB: refuse anything larger


@dataclass(frozen=True)
class Rect:
    """Canvas pixels [x, x + width) x [y, y + height); y grows downwards, 0 is the horizon."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, geometry.check_int(name, getattr(self, name)))
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


@dataclass(frozen=True)
class WindowBlend:
    """A window's anchors under a world with biomes: their z_g [A, Z] and blend weights [A, n]
    at G_S's input cell columns and at each G_T conv output's columns (StyleField, unbatched)."""

    z: torch.Tensor
    cells: np.ndarray
    layers: list[np.ndarray]


def window_blend(cfg: GeneratorConfig, world: World, seed: int, window: _Window) -> WindowBlend:
    """The anchors whose styles reach `window` and their weights at every column it computes."""
    cols, n_up = window.cols, cfg.n_up
    first_cell, n_cells = geometry.structure_input_cells(cols, cfg)
    columns = [geometry.canvas_columns(first_cell, n_cells, 1, n_up)]
    for idx, size in zip(
        geometry.texture_layer_index(n_up),
        geometry.texture_layer_sizes(cols.n_cells, n_up),
        strict=True,
    ):
        columns.append(geometry.canvas_columns(idx.start(cols.cell0), size, idx.scale, n_up))
    first, w = world.weights(seed, np.concatenate(columns))
    parts = np.split(w, np.cumsum([c.size for c in columns])[:-1], axis=1)
    z = world.anchor_latents(seed, first, w.shape[0], cfg.z_dim)
    return WindowBlend(z, parts[0], parts[1:])


def anchors_reaching(cfg: GeneratorConfig, world: World, seed: int, rect: Rect) -> int:
    """How many anchors' styles reach the window that renders `rect`: 1 inside a biome (the
    renderer's one-style kernels), more where it touches a transition (the spatial ones)."""
    return window_blend(cfg, world, seed, _window(cfg, rect)).z.shape[0]


def stack_blends(blends: Sequence[WindowBlend], device: torch.device) -> StyleField:
    """Batch windows' blends of one window shape; a window with fewer anchors gets anchors with
    weight 0 (and z_g 0, which the mapping keeps finite) up to the largest count."""
    n = max(b.z.shape[0] for b in blends)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, 0, 0, n - t.shape[0]))

    def weights(pick: Callable[[WindowBlend], np.ndarray]) -> torch.Tensor:
        return torch.stack([pad(torch.from_numpy(pick(b))) for b in blends]).to(device)

    return StyleField(
        z=torch.stack([pad(b.z) for b in blends]).to(device),
        cells=weights(lambda b: b.cells),
        layers=[weights(lambda b, i=i: b.layers[i]) for i in range(len(blends[0].layers))],
    )


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8."""
    x = ((rgb.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _take(t: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """Rows `idx` of a channels_last batch: a view when they are consecutive (always on CPU)."""
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return t[idx[0] : idx[0] + len(idx)]
    pick = torch.tensor(idx, device=t.device)
    return t[pick].contiguous(memory_format=torch.channels_last)


Style = torch.Tensor | WindowBlend  # one z_g for the whole window, or a blend of anchors


class CanvasRenderer:
    """Renders equally sized canvas rectangles of one world with one generator:
    `renderer(jobs)` with jobs [(seed, Rect)] -> uint8 [B, H, W, 3]. The tile server's render
    worker, and what `render_batch` and `render_region` run.

    It owns how a batch meets the hardware (the generator itself has no serving policy): on CPU
    every window is its own batch-1 pass with the fused kernels, which is as fast per pixel as a
    batch and skips the activation-sized modulation passes; on an accelerator a group of windows
    is one batched pass, and a lone window takes the fused kernels. Both kernels compute the same
    values (tests/model/test_networks.py), so the choice changes speed, not pixels. Windows in a
    biome transition take the spatial kernels (batched on an accelerator, one by one on CPU).
    """

    def __init__(
        self, generator: Generator, world: World = ONE_STYLE, batch_windows: bool | None = None
    ) -> None:
        """`batch_windows` None follows the device (batch on an accelerator, not on CPU); tests
        set it to run the accelerator's policy on CPU."""
        self.generator = generator
        self.world = world
        self.batch_windows = batch_windows

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

    def _style(self, seed: int, window: _Window, z_global: torch.Tensor) -> Style:
        """The seed's z_g in a one-style world; else the window's anchors, or the one anchor's
        z_g when it has weight 1 over the whole window (plain ground costs what it did)."""
        if not self.world.biomes:
            return z_global
        blend = window_blend(self.generator.cfg, self.world, seed, window)
        return blend.z[0] if blend.z.shape[0] == 1 else blend

    def _render_group(self, jobs: Sequence[tuple[int, _Window]]) -> np.ndarray:
        """Windows of one shape: stack their hashed inputs, run the generator, crop."""
        cfg = self.generator.cfg
        device = next(self.generator.parameters()).device
        inputs = [window_inputs(cfg, seed, w) for seed, w in jobs]
        styles = [self._style(seed, w, inp[0]) for (seed, w), inp in zip(jobs, inputs, strict=True)]
        cl = torch.channels_last

        def stack(i: int) -> torch.Tensor:
            return torch.stack([inp[i] for inp in inputs]).to(device)

        z_local = stack(1).contiguous(memory_format=cl)
        coords = stack(2).contiguous(memory_format=cl)
        noise = [
            torch.stack([inp[3][layer] for inp in inputs]).to(device).contiguous(memory_format=cl)
            for layer in range(2 * cfg.n_up)
        ]
        rgb = self._forward(styles, z_local, coords, noise)
        rows, cols = jobs[0][1].rows, jobs[0][1].cols
        rgb = rgb[:, :, rows.crop : rows.crop + rows.length, cols.crop : cols.crop + cols.length]
        return to_uint8(rgb)

    def _forward(
        self,
        styles: Sequence[Style],
        z_local: torch.Tensor,
        coords: torch.Tensor,
        noise: list[torch.Tensor],
    ) -> torch.Tensor:
        """The kernel choice and the per-sample split described in the class docstring: windows
        with one z_g and windows with a blend are separate passes."""
        g = self.generator
        device = z_local.device
        one = [i for i, s in enumerate(styles) if isinstance(s, torch.Tensor)]
        blended = [i for i, s in enumerate(styles) if not isinstance(s, torch.Tensor)]
        batch = device.type != "cpu" if self.batch_windows is None else self.batch_windows
        if not batch:
            passes = [[i] for i in range(len(styles))]
        else:
            passes = [p for p in (one, blended) if p]
        parts = []
        for idx in passes:
            args = (_take(z_local, idx), _take(coords, idx))
            picked_noise = [_take(n, idx) for n in noise]
            if isinstance(styles[idx[0]], torch.Tensor):
                z_global = torch.stack([styles[i] for i in idx]).to(device)
                impl = "fused" if len(idx) == 1 else "batched"
                parts.append(g(z_global, *args, noise=picked_noise, impl=impl))
            else:
                field = stack_blends([styles[i] for i in idx], device)
                parts.append(g.synthesize_field(field, *args, picked_noise))
        order = [i for idx in passes for i in idx]
        rgb = parts[0] if len(parts) == 1 else torch.cat(parts)
        if order != sorted(order):
            rgb = rgb[torch.tensor(np.argsort(order), device=device)]
        return rgb


def render_batch(
    generator: Generator, jobs: Sequence[tuple[int, Rect]], world: World = ONE_STYLE
) -> np.ndarray:
    """Render equally sized rectangles (any seeds, any positions): [B, H, W, 3] uint8
    (see CanvasRenderer)."""
    return CanvasRenderer(generator, world)(jobs)


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
    world: World = ONE_STYLE,
) -> np.ndarray:
    """Render a rectangle of any size as [H, W, 3] uint8 in chunks of at most max_chunk px per
    side, so memory is bounded by the chunk, not the region."""
    if max_chunk is None:
        max_chunk = default_chunk(generator.cfg)
    chunk = geometry.check_int("max_chunk", max_chunk)
    if chunk < 1:
        raise ValueError(f"max_chunk must be >= 1, got {chunk}")
    check_seed(seed)
    render = CanvasRenderer(generator, world)
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
