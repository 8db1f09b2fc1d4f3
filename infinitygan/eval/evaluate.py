"""`infinitygan eval`: how good, seamless and non-repeating a generator checkpoint is, with a
real-vs-real floor and an untrained-model ceiling beside every figure.

Figures (all from the real canvas renderer, so they measure what the tile server serves; the
image sets are built in `samples.py`):

- Patch FID / KID: real training patches (cell-aligned rows, random x, flips) against rendered
  patches of the same size at the same canvas rows, at random x and seeds.
- Diversity: Inception-feature and pixel distance between patches at the *same* canvas position
  rendered with different seeds (real: different photos at the same row offset).
- ScaleInv FID / KID (the InfinityGAN paper's scale-invariant FID, computed as its official code
  does): generate a square s times the training image's field of view (s * full px, centred on
  the horizon), area-downscale it to the patch size, and compare with real full-height square
  crops area-downscaled to the same size. A generator that only knows local texture produces
  implausible scenes when viewed from s times farther out.
- Band FID / KID: H x H squares of the band a training image stands for (canvas rows
  [-H/2, H/2), H = the training image height) against H x H crops of the real images at that
  height, at full resolution (the feature extractor resizes them to its input as it does the
  patches). Patch FID sees only what the discriminator sees; this sees whole training-image
  heights: whether sky, horizon and ground sit together as in the photos.
- Seams: a 2x2 block of 256 px tiles rendered in one pass vs tile by tile (the renderer promises
  they are equal).
- Repetition: autocorrelation of a long strip at the horizon at lags beyond half the coordinate
  period (real: random photo crops side by side).

The floor is two independent real sample sets of the same size (FID is biased at small N, so
only figures at the same N are comparable); the ceiling is a freshly initialised generator of
the checkpoint's config (seeded, so it is the same every run). Both generators render the same
positions and seeds (common random numbers: the trained-vs-untrained difference is not sampling
noise). Every figure draws from its own seeded random streams, so figures do not depend on
each other or on their order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.patches import PatchSampler
from ..model.checkpoint import load_generator, resolve_device
from ..model.config import GeneratorConfig
from ..model.networks import Generator
from . import diversity, fid, samples, seams
from .repetition import repetition_stats
from .report import Row, row
from .samples import TILE, X_RANGE

Features = Callable[[np.ndarray], np.ndarray]
Rows = dict[str, Row]


@dataclass(frozen=True)
class EvalConfig:
    """Sample counts are per image set; defaults keep a `small` eval to minutes on 2 CPU cores.
    Raise `samples` (e.g. 2048+) for figures to publish; a GPU makes that cheap."""

    samples: int = 256
    scaleinv_samples: int = 64
    scaleinv_scale: int = 4
    band_samples: int = 512
    seam_blocks: int = 4
    strip_width: int = 8192
    strip_seeds: int = 2
    seed: int = 0
    extractor: str = "inception"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("samples", "scaleinv_samples", "band_samples"):
            value = getattr(self, name)
            if value < 4 or value % 2:
                raise ValueError(f"{name} must be even and >= 4, got {value}")
        for name in ("scaleinv_scale", "seam_blocks", "strip_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def untrained_generator(cfg: GeneratorConfig, seed: int, device: torch.device) -> Generator:
    """The ceiling: a fresh generator of the same config, initialised from `seed` without
    disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = Generator(cfg)
    return g.to(device).eval().requires_grad_(False)


@dataclass
class Run:
    """What every figure needs: the real photos, the two generators, the feature extractor,
    seeded random streams, and the timings recorded so far."""

    ecfg: EvalConfig
    sampler: PatchSampler
    models: dict[str, Generator]  # "trained" and "untrained"
    features: Features
    timings: dict[str, float] = field(default_factory=dict)

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.ecfg.seed, stream])

    def tgen(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.ecfg.seed * 1000 + stream)

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = round(time.perf_counter() - t0, 2)
        return out

    def per_model(self, name: str, fn: Callable[[Generator], Any]) -> dict[str, Any]:
        """`fn` of each generator, timed as `<name>_<model>`."""
        return {k: self.timed(f"{name}_{k}", lambda m=m: fn(m)) for k, m in self.models.items()}

    def features_of(self, name: str, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Features of each image set, timed together as `features_<name>`."""
        return self.timed(
            f"features_{name}", lambda: {k: self.features(v) for k, v in images.items()}
        )


def distance_rows(name: str, feats: dict[str, np.ndarray]) -> Rows:
    """One row per distance (FID, KID): trained, real floor and untrained ceiling, each against
    the same reference set `real_a`; `name` is a format string for the distance's name."""
    ref = feats["real_a"]
    return {
        name.format(dist_name): row(
            dist(ref, feats["trained"]),
            dist(ref, feats["real_b"]),
            dist(ref, feats["untrained"]),
            "lower",
        )
        for dist_name, dist in fid.DISTANCES.items()
    }


# ---------------------------------------------------------------- patches: FID and diversity


@dataclass(frozen=True)
class PatchSets:
    """Two real patch sets (with the row offsets of the first), the rendered patches of each
    generator in same-position seed pairs (2m, 2m+1), and all their features."""

    real_a: np.ndarray
    rows_a: np.ndarray
    real_b: np.ndarray
    fakes: dict[str, np.ndarray]
    feats: dict[str, np.ndarray]


def patch_sets(run: Run) -> PatchSets:
    """The patch sets that patch FID and diversity share (rendering and features are the cost
    of a CPU evaluation, so they are made once)."""
    n = run.ecfg.samples
    real_a, rows_a = samples.real_patches(run.sampler, n, run.tgen(1))
    real_b, _ = samples.real_patches(run.sampler, n, run.tgen(2))
    fakes = run.per_model(
        "render_patches", lambda m: samples.fake_patches(m, n, run.tgen(10), run.rng(10))
    )
    feats = run.features_of("patches", {"real_a": real_a, "real_b": real_b, **fakes})
    return PatchSets(real_a, rows_a, real_b, fakes, feats)


def patch_rows(p: PatchSets) -> Rows:
    """Patch FID and KID."""
    return distance_rows("patch_{}", p.feats)


def diversity_rows(p: PatchSets) -> Rows:
    """Distance between same-position patches under two seeds, in features and in pixels."""
    ia, ib = diversity.same_row_pairs(p.rows_a)
    f, x = p.feats, p.fakes
    return {
        "diversity_features": row(
            diversity.pair_distance(f["trained"][0::2], f["trained"][1::2]),
            diversity.pair_distance(f["real_a"][ia], f["real_a"][ib]),
            diversity.pair_distance(f["untrained"][0::2], f["untrained"][1::2]),
            "closer to real",
        ),
        "diversity_pixels": row(
            diversity.pixel_pair_distance(x["trained"][0::2], x["trained"][1::2]),
            diversity.pixel_pair_distance(p.real_a[ia], p.real_a[ib]),
            diversity.pixel_pair_distance(x["untrained"][0::2], x["untrained"][1::2]),
            "closer to real",
        ),
    }


# ---------------------------------------------------------------- horizon squares: ScaleInv, band


def horizon_square_rows(
    run: Run, name: str, rows_name: str, n: int, scale: int, size: int, streams: Sequence[int]
) -> Rows:
    """FID and KID of `n` horizon-centred squares of `scale` x the training image's field of view,
    resized to `size`, against real full-height crops resized alike. `streams` seed the two real
    sets and the rendered one; `name` labels the timings, `rows_name` formats the rows' names."""
    real_stream_a, real_stream_b, fake_stream = streams
    real_a = samples.real_full_crops(run.sampler, n, size, run.rng(real_stream_a))
    real_b = samples.real_full_crops(run.sampler, n, size, run.rng(real_stream_b))
    fakes = run.per_model(
        f"render_{name}", lambda m: samples.fake_squares(m, n, scale, size, run.rng(fake_stream))
    )
    feats = run.features_of(name, {"real_a": real_a, "real_b": real_b, **fakes})
    return distance_rows(rows_name, feats)


def scaleinv_rows(run: Run) -> Rows:
    """ScaleInv FID and KID: s x the field of view, area-downscaled to the patch size."""
    s = run.ecfg.scaleinv_scale
    n, size = run.ecfg.scaleinv_samples, run.sampler.patch
    return horizon_square_rows(run, "scaleinv", f"scaleinv_{{}}_{s}x", n, s, size, (20, 21, 30))


def band_rows(run: Run) -> Rows:
    """Band FID and KID: whole training-image heights (H x H over the band), at full size."""
    n, size = run.ecfg.band_samples, run.sampler.height
    return horizon_square_rows(run, "band", "band_{}", n, 1, size, (60, 61, 62))


# ---------------------------------------------------------------- seams and repetition


def seam_blocks(g: Generator, blocks: int, rng: np.random.Generator) -> dict[str, float]:
    """Seam statistics over `blocks` 2x2-tile blocks on the server's 256 px grid around the
    horizon (one pass vs four independent tile renders)."""
    tiles_x = rng.integers(-X_RANGE // TILE, X_RANGE // TILE, size=blocks)
    stats = [
        seams.seam_stats(*samples.tile_block(g, seed, int(tx) * TILE), TILE)
        for seed, tx in zip(samples.seeds(rng, blocks), tiles_x, strict=True)
    ]
    return seams.summarise(stats)


def seam_rows(run: Run) -> Rows:
    """Seams of both generators; the real photos give the no-grid value of `vs_neighbours`."""
    blocks = run.ecfg.seam_blocks
    s = run.timed(
        "seams", lambda: {k: seam_blocks(m, blocks, run.rng(40)) for k, m in run.models.items()}
    )
    photos = [img.permute(1, 2, 0).numpy() for img in run.sampler.images]
    return {
        "seam_ratio": row(s["trained"]["ratio"], None, s["untrained"]["ratio"], "~1"),
        "seam_vs_neighbours": row(
            s["trained"]["vs_neighbours"],
            seams.real_seam(photos, run.rng(41)),
            s["untrained"]["vs_neighbours"],
            "~1 (no grid)",
        ),
        "seam_max_abs_diff": row(
            s["trained"]["max_abs_diff"], None, s["untrained"]["max_abs_diff"], "<= 1"
        ),
    }


def mean_repetition(
    strips: Sequence[np.ndarray], cfg: GeneratorConfig, rng: np.random.Generator
) -> dict[str, float]:
    """`repetition_stats` of each strip at the config's coordinate period, averaged."""
    period = cfg.coord_period_cells * cfg.pixels_per_cell
    stats = [repetition_stats(s, period, cfg.pixels_per_cell, rng) for s in strips]
    return {k: float(np.mean([s[k] for s in stats])) for k in ("peak", "at_period", "random")}


def repetition_rows(run: Run) -> Rows:
    """Repetition of horizon strips of both generators and of real photo crops side by side."""
    ecfg, cfg = run.ecfg, run.sampler.cfg

    def strips(m: Generator) -> list[np.ndarray]:
        r = run.rng(50)
        return [
            samples.generated_strip(m, seed, ecfg.strip_width, r)
            for seed in samples.seeds(r, ecfg.strip_seeds)
        ]

    def measure() -> dict[str, dict[str, float]]:
        real = [
            samples.real_strip(run.sampler, ecfg.strip_width, run.rng(52 + 100 * i))
            for i in range(2)
        ]
        out = {k: mean_repetition(strips(m), cfg, run.rng(53)) for k, m in run.models.items()}
        return out | {"real": mean_repetition(real, cfg, run.rng(53))}

    reps = run.timed("repetition", measure)
    return {
        f"repetition_{key}": row(
            reps["trained"][key], reps["real"][key], reps["untrained"][key], "lower (~real)"
        )
        for key in ("at_period", "peak", "random")
    }


# ---------------------------------------------------------------- the report


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
    device = next(g.parameters()).device
    cfg = g.cfg
    run = Run(
        ecfg,
        PatchSampler(data, cfg),
        {"trained": g, "untrained": untrained_generator(cfg, ecfg.seed, device)},
        fid.extractor(ecfg.extractor, device) if features is None else features,
    )
    patches = patch_sets(run)
    metrics = (
        patch_rows(patches)
        | diversity_rows(patches)
        | scaleinv_rows(run)
        | band_rows(run)
        | seam_rows(run)
        | repetition_rows(run)
    )
    run.timings["total"] = round(time.perf_counter() - t_start, 2)
    full = cfg.train_full_cells * cfg.pixels_per_cell
    return {
        "metrics": metrics,
        "samples": {
            "patch": ecfg.samples,
            "patch_size": run.sampler.patch,
            "scaleinv": ecfg.scaleinv_samples,
            "scaleinv_scale": ecfg.scaleinv_scale,
            "band": ecfg.band_samples,
            "band_size": full,
            "seam_blocks": ecfg.seam_blocks,
            "strip": [full, ecfg.strip_width],
            "strip_seeds": ecfg.strip_seeds,
            "coord_period_px": cfg.coord_period_cells * cfg.pixels_per_cell,
        },
        "data": {"folder": str(data), "images": len(run.sampler)},
        "extractor": getattr(run.features, "name", type(run.features).__name__),
        "timings_s": run.timings,
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
