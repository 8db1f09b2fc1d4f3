"""The image sets the figures compare: real patches and crops cut from the training photos, and
the same shapes rendered by a generator through the canvas renderer (so the figures measure
what the tile server serves).

Real and rendered sets are built to match: a real patch cut o cells below the image top is the
canvas rows [(-full/2 + o) * ppc, + patch) (an image spans cell rows [-full/2, +full/2) around
the horizon), and a full-height real crop is the square centred on the horizon. All images are
uint8 [N, H, W, 3].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.patches import PatchSampler, sample_rows
from ..model.canvas import Rect, render_batch, render_region
from ..model.config import GeneratorConfig
from ..model.latents import MAX_SEED
from ..model.networks import Generator

TILE = 256  # the server's tile size: seams are measured on its grid
X_RANGE = 1 << 24  # random canvas x positions are drawn from [-X_RANGE, X_RANGE)
RENDER_JOBS = 8  # patch bands per render_batch call (bounds memory; progress granularity)
SQUARE_BATCH_PX = 2 * 512 * 512  # pixels of horizon squares per render_batch call


def area_resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> [N, size, size, 3] by area averaging (the zoom-out rule)."""
    if images.shape[1:3] == (size, size):
        return images
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(size, size), mode="area")
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def seeds(rng: np.random.Generator, n: int) -> list[int]:
    """n random canvas seeds."""
    return [int(s) for s in rng.integers(0, MAX_SEED, size=n, dtype=np.int64)]


def render(
    g: Generator,
    jobs: Sequence[tuple[int, Rect]],
    desc: str,
    size: int | None = None,
    chunk: int = RENDER_JOBS,
) -> np.ndarray:
    """render_batch in chunks with a progress bar; `size` area-resizes each chunk right away."""
    parts = []
    for i in tqdm(range(0, len(jobs), chunk), desc=desc, unit="batch", leave=False):
        out = render_batch(g, jobs[i : i + chunk])
        parts.append(out if size is None else area_resize(out, size))
    return np.concatenate(parts)


# ---------------------------------------------------------------- patches


def real_patches(sampler: PatchSampler, n: int, gen: torch.Generator) -> tuple[np.ndarray, ...]:
    """n training patches as uint8 [N, P, P, 3] and their row offsets in cells [N]."""
    imgs, rows = [], []
    for i in range(0, n, 256):
        batch = sampler.sample(min(256, n - i), gen, flip=True)
        x = ((batch.images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        imgs.append(x.permute(0, 2, 3, 1).numpy())
        rows.append(batch.row_cells.numpy())
    return np.concatenate(imgs), np.concatenate(rows)


def fake_band_jobs(
    cfg: GeneratorConfig, bands: int, per_band: int, gen: torch.Generator, rng: np.random.Generator
) -> list[tuple[int, Rect]]:
    """Render jobs for `bands` positions, each a band of `per_band` adjacent patches, rendered
    twice (jobs 2b and 2b+1) with different seeds.

    A band's rows are those of a real patch (the shared `sample_rows`): canvas rows
    [(-full/2 + o) * ppc, + patch) for a cell offset o; x and seeds are random. One forward pass
    per band rather than per patch halves the CPU cost of small windows.
    """
    ppc, patch = cfg.pixels_per_cell, cfg.train_patch_cells * cfg.pixels_per_cell
    rows = sample_rows(bands, cfg, gen)
    xs = rng.integers(-X_RANGE, X_RANGE, size=bands)
    pair_seeds = seeds(rng, 2 * bands)
    jobs = []
    for b in range(bands):
        y = (-cfg.train_full_cells // 2 + int(rows[b])) * ppc
        for j in (0, 1):
            jobs.append((pair_seeds[2 * b + j], Rect(int(xs[b]), y, per_band * patch, patch)))
    return jobs


def cut_bands(bands: np.ndarray, per_band: int) -> np.ndarray:
    """[2B, P, k*P, 3] (seed pairs of bands) -> [2Bk, P, P, 3] ordered so that patches 2m and
    2m+1 are the same canvas position under the two seeds."""
    n2, p = bands.shape[0], bands.shape[1]
    x = bands.reshape(n2 // 2, 2, p, per_band, p, 3).transpose(0, 3, 1, 2, 4, 5)
    return x.reshape(n2 * per_band, p, p, 3)


def fake_patches(
    g: Generator, n: int, gen: torch.Generator, rng: np.random.Generator, per_band: int = 4
) -> np.ndarray:
    """n rendered patches [n, P, P, 3] in same-position seed pairs (2m, 2m+1): every patch is
    still a draw of (seed, position), so the set serves FID and the diversity pairs alike."""
    bands = -(-n // (2 * per_band))
    jobs = fake_band_jobs(g.cfg, bands, per_band, gen, rng)
    return cut_bands(render(g, jobs, "render patches"), per_band)[:n]


# ---------------------------------------------------------------- horizon-centred squares


def real_full_crops(
    sampler: PatchSampler, n: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """n full-height square crops of training images (random x, random flip), area-resized to
    `size`: the real side of the ScaleInv and band FIDs."""
    full = sampler.height
    out = np.empty((n, full, full, 3), dtype=np.uint8)
    for i in range(n):
        img = sampler.images[int(rng.integers(len(sampler)))]  # [3, full, W] uint8
        x0 = int(rng.integers(0, img.shape[2] - full + 1))
        crop = img[:, :, x0 : x0 + full].permute(1, 2, 0).numpy()
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return area_resize(out, size)


def fake_squares(
    g: Generator, n: int, scale: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """n squares of `scale` x the training image's field of view, centred on the horizon, at
    random x and seeds, area-resized to `size`. At scale 1 a square is exactly the canvas rows
    a training image stands for: an H x H crop of a panorama over the band [-H/2, H/2)."""
    cfg = g.cfg
    side = scale * cfg.train_full_cells * cfg.pixels_per_cell
    xs = rng.integers(-X_RANGE, X_RANGE, size=n)
    jobs = [
        (seed, Rect(int(x), -side // 2, side, side))
        for seed, x in zip(seeds(rng, n), xs, strict=True)
    ]
    chunk = max(1, SQUARE_BATCH_PX // side**2)
    return render(g, jobs, f"render {scale}x field of view", size=size, chunk=chunk)


# ---------------------------------------------------------------- tile blocks and strips


def tile_block(g: Generator, seed: int, x0: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2x2 block of server tiles at canvas x0 on the horizon (rows [-TILE, TILE)), rendered
    in one pass and assembled from four independent tile renders: [2T, 2T, 3] each."""
    y0 = -TILE
    onepass = render_batch(g, [(seed, Rect(x0, y0, 2 * TILE, 2 * TILE))])[0]
    tiles = render_batch(
        g, [(seed, Rect(x0 + dx, y0 + dy, TILE, TILE)) for dy in (0, TILE) for dx in (0, TILE)]
    )
    tiled = np.concatenate(
        [np.concatenate(list(tiles[0:2]), axis=1), np.concatenate(list(tiles[2:4]), axis=1)]
    )
    return onepass, tiled


def generated_strip(g: Generator, seed: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A training-image-high strip centred on the horizon, `width` px long."""
    full = g.cfg.train_full_cells * g.cfg.pixels_per_cell
    x0 = int(rng.integers(-X_RANGE, X_RANGE))
    return render_region(g, seed, Rect(x0, -full // 2, width, full))


def real_strip(sampler: PatchSampler, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random crops (random width, random flip) of random photos side by side: a strip of the
    same height that does not repeat."""
    parts, total = [], 0
    while total < width:
        img = sampler.images[int(rng.integers(len(sampler)))].permute(1, 2, 0).numpy()
        w = int(rng.integers(min(sampler.patch, img.shape[1]), img.shape[1] + 1))
        x0 = int(rng.integers(0, img.shape[1] - w + 1))
        crop = img[:, x0 : x0 + w]
        parts.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
        total += w
    return np.concatenate(parts, axis=1)[:, :width]
