"""`infinitygan eval`: how good, seamless and non-repeating a generator checkpoint is, with a
real-vs-real floor and an untrained-model ceiling beside every figure.

Figures (all from the real canvas renderer, so they measure what the tile server serves):

- Patch FID / KID: real training patches (PatchSampler: cell-aligned rows, random x, flips)
  against rendered patches of the same size at the same canvas rows (an image spans cell rows
  [-full/2, +full/2) around the horizon, so a patch cut o cells below the image top is canvas
  rows [(-full/2 + o) * ppc, +patch)), at random x and seeds.
- ScaleInv FID / KID (paper section 8 as reimplemented in its `eval_fids.py`): generate a
  square s times the training image's field of view (s * full px, centred on the horizon),
  area-downscale it to the patch size, and compare with real full-height square crops
  area-downscaled to the same size. A generator that only knows local texture produces
  implausible scenes when viewed from s times farther out.
- Diversity: Inception-feature and pixel distance between patches at the *same* canvas position
  rendered with different seeds (real: different photos at the same row offset).
- Seams: a 2x2 block of 256 px tiles rendered in one pass vs tile by tile (DESIGN contract).
- Repetition: autocorrelation of a long strip at the horizon at lags beyond half the coordinate
  period (real: random photo crops side by side).

The floor is two independent real sample sets of the same size (FID is biased at small N, so
only figures at the same N are comparable); the ceiling is a freshly initialised generator of
the checkpoint's config (seeded, so it is the same every run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..model.canvas import Rect, render_batch, render_region
from ..model.checkpoint import load_generator, resolve_device
from ..model.config import GeneratorConfig
from ..model.latents import MAX_SEED
from ..model.networks import Generator
from . import metrics, scores
from .data import PatchSampler, sample_rows

TILE = 256  # the server's tile size: seams are measured on its grid
X_RANGE = 1 << 24  # random canvas x positions are drawn from [-X_RANGE, X_RANGE)
RENDER_JOBS = 8  # rectangles per render_batch call (bounds memory; progress granularity)

Features = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalConfig:
    """Sample counts are per image set; defaults keep a `small` eval to minutes on 2 CPU cores.
    Raise `samples` (e.g. 2048+) for figures to publish; a GPU makes that cheap."""

    samples: int = 256
    scaleinv_samples: int = 64
    scaleinv_scale: int = 4
    seam_blocks: int = 4
    strip_width: int = 8192
    strip_seeds: int = 2
    seed: int = 0
    extractor: str = "inception"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("samples", "scaleinv_samples"):
            value = getattr(self, name)
            if value < 4 or value % 2:
                raise ValueError(f"{name} must be even and >= 4, got {value}")
        for name in ("scaleinv_scale", "seam_blocks", "strip_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ---------------------------------------------------------------- image sets


def area_resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> [N, size, size, 3] by area averaging (the zoom-out rule)."""
    if images.shape[1:3] == (size, size):
        return images
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(size, size), mode="area")
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def real_patches(sampler: PatchSampler, n: int, gen: torch.Generator) -> tuple[np.ndarray, ...]:
    """n training patches as uint8 [N, P, P, 3] and their row offsets in cells [N]."""
    imgs, rows = [], []
    for i in range(0, n, 256):
        batch = sampler.sample(min(256, n - i), gen, flip=True)
        x = ((batch.images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        imgs.append(x.permute(0, 2, 3, 1).numpy())
        rows.append(batch.row_cells.numpy())
    return np.concatenate(imgs), np.concatenate(rows)


def real_full_crops(
    sampler: PatchSampler, n: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """n full-height square crops of training images (random x, random flip), area-resized to
    `size`: the real side of ScaleInv FID."""
    full = sampler.height
    out = np.empty((n, full, full, 3), dtype=np.uint8)
    for i in range(n):
        img = sampler.images[int(rng.integers(len(sampler)))]  # [3, full, W] uint8
        x0 = int(rng.integers(0, img.shape[2] - full + 1))
        crop = img[:, :, x0 : x0 + full].permute(1, 2, 0).numpy()
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return area_resize(out, size)


def _render(
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


def _seeds(rng: np.random.Generator, n: int) -> list[int]:
    return [int(s) for s in rng.integers(0, MAX_SEED, size=n, dtype=np.int64)]


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
    seeds = _seeds(rng, 2 * bands)
    jobs = []
    for b in range(bands):
        y = (-cfg.train_full_cells // 2 + int(rows[b])) * ppc
        for j in (0, 1):
            jobs.append((seeds[2 * b + j], Rect(int(xs[b]), y, per_band * patch, patch)))
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
    return cut_bands(_render(g, jobs, "render patches"), per_band)[:n]


def fake_scaleinv(
    g: Generator, n: int, scale: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """n squares of `scale` x the training image's field of view, centred on the horizon,
    area-downscaled to `size` (a 4x `small` square is 512 px: rendered two at a time)."""
    cfg = g.cfg
    side = scale * cfg.train_full_cells * cfg.pixels_per_cell
    xs = rng.integers(-X_RANGE, X_RANGE, size=n)
    jobs = [
        (seed, Rect(int(x), -side // 2, side, side))
        for seed, x in zip(_seeds(rng, n), xs, strict=True)
    ]
    return _render(g, jobs, f"render scaleinv {scale}x", size=size, chunk=2)


def same_row_pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of real patches cut at the same row offset (the real analogue of one canvas
    position under two seeds)."""
    a, b = [], []
    for r in np.unique(rows):
        idx = np.flatnonzero(rows == r)
        a.extend(idx[0:-1:2])
        b.extend(idx[1::2])
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


# ---------------------------------------------------------------- seams and repetition


def seam_blocks(g: Generator, blocks: int, rng: np.random.Generator) -> dict[str, float]:
    """Mean seam statistics over `blocks` 2x2-tile blocks on the server's 256 px grid around
    the horizon (one pass vs four independent tile renders)."""
    stats: list[dict[str, float]] = []
    tiles_x = rng.integers(-X_RANGE // TILE, X_RANGE // TILE, size=blocks)
    for seed, tx in zip(_seeds(rng, blocks), tiles_x, strict=True):
        x0, y0 = int(tx) * TILE, -TILE  # block rows [-256, 256): the horizon band
        onepass = render_batch(g, [(seed, Rect(x0, y0, 2 * TILE, 2 * TILE))])[0]
        tiles = render_batch(
            g, [(seed, Rect(x0 + dx, y0 + dy, TILE, TILE)) for dy in (0, TILE) for dx in (0, TILE)]
        )
        tiled = np.concatenate(
            [np.concatenate(list(tiles[0:2]), axis=1), np.concatenate(list(tiles[2:4]), axis=1)]
        )
        stats.append(scores.seam_stats(onepass, tiled, TILE))
    mean = {k: float(np.mean([s[k] for s in stats])) for k in stats[0] if k != "max_abs_diff"}
    mean["max_abs_diff"] = max(s["max_abs_diff"] for s in stats)
    mean["ratio"] = mean["border_tiled"] / max(mean["border_onepass"], 1e-12)
    mean["vs_neighbours"] = mean["border_tiled"] / max(mean["neighbours"], 1e-12)
    return mean


def real_seam(sampler: PatchSampler, rng: np.random.Generator, per_image: int = 8) -> float:
    """`vs_neighbours` of the real photos at random interior lines: the value for images that
    have no tile grid at all (~1; a ratio of means, like the generated blocks')."""
    borders, neighbours = [], []
    for img in sampler.images:
        x = img.permute(1, 2, 0).numpy()
        for _ in range(per_image):
            col = int(rng.integers(3, x.shape[1] - 2))
            row = int(rng.integers(3, x.shape[0] - 2))
            borders.append(scores.border_step(x, col, row))
            neighbours.append(scores.neighbour_step(x, col, row))
    return float(np.mean(borders) / max(np.mean(neighbours), 1e-12))


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


def repetition(
    strips: Sequence[np.ndarray], cfg: GeneratorConfig, rng: np.random.Generator
) -> dict[str, float]:
    period = cfg.coord_period_cells * cfg.pixels_per_cell
    stats = [scores.repetition_stats(s, period, cfg.pixels_per_cell, rng) for s in strips]
    return {k: float(np.mean([s[k] for s in stats])) for k in ("peak", "at_period", "random")}


# ---------------------------------------------------------------- the report


def untrained_generator(cfg: GeneratorConfig, seed: int, device: torch.device) -> Generator:
    """The ceiling: a fresh generator of the same config, initialised from `seed` without
    disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = Generator(cfg)
    return g.to(device).eval().requires_grad_(False)


def _num(value: float | None) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return None if value is None or not np.isfinite(value) else float(value)


def _row(trained: float | None, real: float | None, untrained: float | None, better: str) -> dict:
    return {
        "trained": _num(trained),
        "real": _num(real),
        "untrained": _num(untrained),
        "better": better,
    }


def _distance_rows(name: str, feats: dict[str, np.ndarray]) -> dict[str, dict]:
    """One row per distance (FID, KID): trained, real floor and untrained ceiling, each against
    the same reference set `real_a`; `name` is a format string for the distance's name."""
    ref = feats["real_a"]
    return {
        name.format(dist_name): _row(
            dist(ref, feats["trained"]),
            dist(ref, feats["real_b"]),
            dist(ref, feats["untrained"]),
            "lower",
        )
        for dist_name, dist in metrics.DISTANCES.items()
    }


def evaluate_generator(
    g: Generator,
    data: str | Path,
    ecfg: EvalConfig,
    features: Features | None = None,
) -> dict[str, Any]:
    """All figures for generator `g` against the images in `data` (see the module docstring).

    `features` defaults to the configured extractor (Inception-v3); tests pass a cheap one.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    device = next(g.parameters()).device
    cfg = g.cfg
    if features is None:
        features = metrics.extractor(ecfg.extractor, device)
    sampler = PatchSampler(data, cfg)
    untrained = untrained_generator(cfg, ecfg.seed, device)
    models = {"trained": g, "untrained": untrained}
    n, patch = ecfg.samples, sampler.patch

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([ecfg.seed, stream])

    def tgen(stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(ecfg.seed * 1000 + stream)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        return out

    # ---- patch sets
    real_a, rows_a = real_patches(sampler, n, tgen(1))
    real_b, _ = real_patches(sampler, n, tgen(2))
    # Both generators render the same positions and seeds (common random numbers: the
    # trained-vs-untrained difference is not sampling noise).
    fakes = {
        name: timed(f"render_patches_{name}", lambda m=m: fake_patches(m, n, tgen(10), rng(10)))
        for name, m in models.items()
    }
    feats = timed(
        "features_patches",
        lambda: {k: features(v) for k, v in {"real_a": real_a, "real_b": real_b, **fakes}.items()},
    )
    out: dict[str, dict] = _distance_rows("patch_{}", feats)

    # ---- diversity: same position, different seeds (fake pairs are (2k, 2k+1))
    ia, ib = same_row_pairs(rows_a)
    out["diversity_features"] = _row(
        scores.pair_distance(feats["trained"][0::2], feats["trained"][1::2]),
        scores.pair_distance(feats["real_a"][ia], feats["real_a"][ib]),
        scores.pair_distance(feats["untrained"][0::2], feats["untrained"][1::2]),
        "closer to real",
    )
    out["diversity_pixels"] = _row(
        scores.pixel_pair_distance(fakes["trained"][0::2], fakes["trained"][1::2]),
        scores.pixel_pair_distance(real_a[ia], real_a[ib]),
        scores.pixel_pair_distance(fakes["untrained"][0::2], fakes["untrained"][1::2]),
        "closer to real",
    )

    # ---- ScaleInv: s x the field of view, downscaled to the patch size
    s, ns = ecfg.scaleinv_scale, ecfg.scaleinv_samples
    full_a = real_full_crops(sampler, ns, patch, rng(20))
    full_b = real_full_crops(sampler, ns, patch, rng(21))
    wide = {
        name: timed(f"render_scaleinv_{name}", lambda m=m: fake_scaleinv(m, ns, s, patch, rng(30)))
        for name, m in models.items()
    }
    wf = timed(
        "features_scaleinv",
        lambda: {k: features(v) for k, v in {"real_a": full_a, "real_b": full_b, **wide}.items()},
    )
    out |= _distance_rows(f"scaleinv_{{}}_{s}x", wf)

    # ---- seams
    seams = timed(
        "seams",
        lambda: {k: seam_blocks(m, ecfg.seam_blocks, rng(40)) for k, m in models.items()},
    )
    out["seam_ratio"] = _row(seams["trained"]["ratio"], None, seams["untrained"]["ratio"], "~1")
    out["seam_vs_neighbours"] = _row(
        seams["trained"]["vs_neighbours"],
        real_seam(sampler, rng(41)),
        seams["untrained"]["vs_neighbours"],
        "~1 (no grid)",
    )
    out["seam_max_abs_diff"] = _row(
        seams["trained"]["max_abs_diff"], None, seams["untrained"]["max_abs_diff"], "<= 1"
    )

    # ---- repetition
    def strips(m: Generator, stream: int) -> list[np.ndarray]:
        r = rng(stream)
        return [
            generated_strip(m, seed, ecfg.strip_width, r) for seed in _seeds(r, ecfg.strip_seeds)
        ]

    reps = timed(
        "repetition",
        lambda: {
            "trained": repetition(strips(g, 50), cfg, rng(53)),
            "untrained": repetition(strips(untrained, 50), cfg, rng(53)),
            "real": repetition(
                [real_strip(sampler, ecfg.strip_width, rng(52 + 100 * i)) for i in range(2)],
                cfg,
                rng(53),
            ),
        },
    )
    for key in ("at_period", "peak", "random"):
        out[f"repetition_{key}"] = _row(
            reps["trained"][key], reps["real"][key], reps["untrained"][key], "lower (~real)"
        )
    timings["total"] = round(time.perf_counter() - t_start, 2)
    return {
        "metrics": out,
        "samples": {
            "patch": n,
            "patch_size": patch,
            "scaleinv": ns,
            "scaleinv_scale": s,
            "seam_blocks": ecfg.seam_blocks,
            "strip": [cfg.train_full_cells * cfg.pixels_per_cell, ecfg.strip_width],
            "strip_seeds": ecfg.strip_seeds,
            "coord_period_px": cfg.coord_period_cells * cfg.pixels_per_cell,
        },
        "data": {"folder": str(data), "images": len(sampler)},
        "extractor": getattr(features, "name", type(features).__name__),
        "timings_s": timings,
    }


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, ecfg: EvalConfig) -> dict:
    """Load a checkpoint through the one loader and evaluate it; the report names the file."""
    device = resolve_device(ecfg.device)
    ckpt = load_generator(checkpoint, device=device)
    report = evaluate_generator(ckpt.generator, data, ecfg)
    return {
        "checkpoint": {"path": str(ckpt.path), "version": ckpt.version, "training": ckpt.training},
        "config": asdict(ecfg),
        "device": str(device),
        **report,
    }


def _fmt(value: float | None, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    return f"{value * scale:.4g}"


def format_table(report: dict) -> str:
    """The report as a fixed-width table (KID shown x1000)."""
    head = ("metric", "trained", "real floor", "untrained", "better")
    rows = [head]
    for name, row in report["metrics"].items():
        scale = 1000.0 if "_kid" in name else 1.0
        label = f"{name} (x1000)" if scale != 1.0 else name
        rows.append(
            (
                label,
                _fmt(row["trained"], scale),
                _fmt(row["real"], scale),
                _fmt(row["untrained"], scale),
                row["better"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
