"""FID while training: a quick patch FID of the EMA generator every `fid_every` iterations, and
the best EMA generator kept beside the last one.

The last EMA generator is not always the best (a GAN's curve is noisy and can turn), so rank 0
keeps `generator-best.safetensors` and `best.json` in the run directory. The real side's
features are computed once per run; every check renders the same seeds and canvas positions
(common random numbers), so consecutive figures differ because the model changed, not because
the samples did. A few hundred patches make FID biased upwards: compare the quick figure only
with itself at the same `fid_samples`, and publish what `infinitygan eval` measures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.patches import PatchSampler
from ..eval import fid, samples
from ..model.networks import Generator

BEST_CHECKPOINT = "generator-best.safetensors"
BEST_RECORD = "best.json"


@dataclass(frozen=True)
class Best:
    """The best quick FID so far, where it was measured, and at how many samples."""

    step: int
    images: int
    fid: float
    samples: int


class FidWatch:
    """Quick patch FID of a generator against a fixed set of real training patches.

    The feature extractor and the real side are made at the first measurement, so a run that
    stops before its first check pays nothing; a missing Inception file raises
    `fid.MetricsUnavailable` there."""

    def __init__(
        self, sampler: PatchSampler, n: int, seed: int, device: torch.device, extractor: str
    ) -> None:
        self.sampler, self.n, self.seed = sampler, n, seed
        self.device, self.extractor = device, extractor
        self._features: Callable[[np.ndarray], np.ndarray] | None = None
        self._real: np.ndarray | None = None

    def measure(self, g: Generator) -> float:
        """FID of `g`'s patches, rendered at the same seeds and positions at every call."""
        if self._features is None or self._real is None:
            self._features = fid.extractor(self.extractor, self.device)
            real, _ = samples.real_patches(
                self.sampler, self.n, torch.Generator().manual_seed(self.seed)
            )
            self._real = self._features(real)
        gen = torch.Generator().manual_seed(self.seed + 1)
        fake = samples.fake_patches(g, self.n, gen, np.random.default_rng([self.seed, 1]))
        return fid.fid(self._real, self._features(fake))


def read_best(run_dir: Path, n: int) -> Best | None:
    """The run's best so far, if it was measured at the same sample count (else it does not
    compare, and the next check starts a new record)."""
    path = run_dir / BEST_RECORD
    if not path.exists():
        return None
    best = Best(**json.loads(path.read_text()))
    return best if best.samples == n else None


def write_best(run_dir: Path, best: Best) -> None:
    (run_dir / BEST_RECORD).write_text(json.dumps(asdict(best), indent=2) + "\n")
