"""A world: how a seed's global style changes along the horizontal axis (biomes).

With biomes off (`biome_px` 0) a seed has one global latent z_g everywhere: the paper's
single-style generation. With biomes on, the canvas has an anchor about every `biome_px` pixels
along x: anchor k sits at k * biome_px plus a hashed jitter of at most a quarter of `biome_px` (so
no period shows) and has its own global latent hashed from (seed, k). Anchor 0 keeps the seed's
own z_g, so the origin of a world is the seed's one-style landscape.

Every position belongs to its nearest anchor with weight 1, except within `transition_px` around
the midpoint between two neighbours, where a smoothstep hands the weight from one to the other.
The weights form a partition of unity and are a pure function of the integer position (exact
int64 arithmetic up to the last step), which is what keeps tiles seamless across transitions.

Why the bounds: a jitter of at most B/4 keeps neighbouring anchors at least B/2 apart and
neighbouring midpoints at least 3B/4 apart; a transition of at most B/2 then stays between its
two anchors, so a position p with k * B <= p < (k + 1) * B blends anchors k and k + 1 only, and
never more than two anchors meet anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import geometry
from .latents import (
    STREAM_ANCHOR,
    STREAM_ANCHOR_JITTER,
    check_seed,
    global_latent,
    hash_normal,
    hash_uniform,
)

# Bump when the anchor placement or the blend changes: it names cached tiles (World.tag).
ANCHOR_SCHEME = 1
MIN_BIOME_PX = 16
MAX_BIOME_PX = 2**40


@dataclass(frozen=True)
class World:
    """The world parameters of a render: `biome_px` 0 is one style (the transition is then
    ignored and stored as 0); otherwise MIN_BIOME_PX <= biome_px <= MAX_BIOME_PX and
    1 <= transition_px <= biome_px // 2."""

    biome_px: int = 0
    transition_px: int = 0

    def __post_init__(self) -> None:
        biome = geometry.check_int("biome_px", self.biome_px)
        transition = geometry.check_int("transition_px", self.transition_px)
        if biome == 0:
            transition = 0
        elif not MIN_BIOME_PX <= biome <= MAX_BIOME_PX:
            raise ValueError(
                f"biome_px must be 0 (one style) or {MIN_BIOME_PX}..{MAX_BIOME_PX}, got {biome}"
            )
        elif not 1 <= transition <= biome // 2:
            raise ValueError(
                f"transition_px must be 1..biome_px // 2 = {biome // 2}, got {transition}"
            )
        object.__setattr__(self, "biome_px", biome)
        object.__setattr__(self, "transition_px", transition)

    @property
    def biomes(self) -> bool:
        return self.biome_px > 0

    @property
    def tag(self) -> str:
        """ "" for one style, else the parameters and the anchor scheme, e.g. "w1b4096t1024"."""
        if not self.biomes:
            return ""
        return f"w{ANCHOR_SCHEME}b{self.biome_px}t{self.transition_px}"

    def version(self, checkpoint_version: str) -> str:
        """What names cached tiles, ETags and TileJSON URLs: the checkpoint's version, plus the
        world's tag with biomes on (one style keeps the bare checkpoint version, so its tiles
        are the ones cached before worlds existed)."""
        return f"{checkpoint_version}-{self.tag}" if self.biomes else checkpoint_version

    def describe(self) -> dict[str, int | bool]:
        return {
            "biomes": self.biomes,
            "biome_px": self.biome_px,
            "transition_px": self.transition_px,
        }

    def anchor_positions(self, seed: int, anchors: np.ndarray) -> np.ndarray:
        """Canvas x of each anchor index: k * biome_px + a hashed jitter in [-B/4, B/4]."""
        reach = self.biome_px // 4
        u = hash_uniform(check_seed(seed), STREAM_ANCHOR_JITTER, anchors.astype(np.int64))
        jitter = np.floor(u * (2 * reach + 1)).astype(np.int64) - reach
        return anchors.astype(np.int64) * self.biome_px + jitter

    def anchor_latents(self, seed: int, first: int, count: int, dim: int) -> torch.Tensor:
        """Global latents [count, dim] of anchors first .. first + count - 1 (anchor 0's is the
        seed's own z_g)."""
        ks = np.arange(first, first + count, dtype=np.int64)
        z = hash_normal(seed, STREAM_ANCHOR, ks[:, None], np.arange(dim, dtype=np.int64)[None])
        if first <= 0 < first + count:
            z[-first] = global_latent(seed, dim)
        return z

    def weights(self, seed: int, positions: np.ndarray) -> tuple[int, np.ndarray]:
        """Blend weights of the anchors at integer canvas x `positions` [n]: (first anchor, w)
        with w [A, n] float32 for anchors first .. first + A - 1, every column summing to 1,
        and no all-zero row at either end (A = 1: one style has weight 1 everywhere)."""
        if not self.biomes:
            raise ValueError("a one-style world has no anchors")
        p = np.asarray(positions, dtype=np.int64)
        if p.ndim != 1 or p.size == 0:
            raise ValueError(f"positions must be a non-empty 1-D array, got shape {p.shape}")
        left = p // self.biome_px  # p lies in [left * B, (left + 1) * B): anchors left, left+1
        lo = int(left.min())
        x = self.anchor_positions(seed, np.arange(lo, int(left.max()) + 2, dtype=np.int64))
        row = left - lo
        # 2 * (p - midpoint) in exact integers, then the smoothstep over the transition
        twice = 2 * p - x[row] - x[row + 1]
        u = np.clip(twice / (2.0 * self.transition_px) + 0.5, 0.0, 1.0)
        t = u * u * (3.0 - 2.0 * u)
        w = np.zeros((x.size, p.size), dtype=np.float64)
        cols = np.arange(p.size)
        w[row, cols] = 1.0 - t
        w[row + 1, cols] = t
        used = np.flatnonzero(w.any(axis=1))
        first, last = int(used[0]), int(used[-1])
        return lo + first, w[first : last + 1].astype(np.float32)


ONE_STYLE = World()
# A traveller at the native zoom crosses a biome every three to four 1280-px screens, and a
# transition takes about a screen.
DEFAULT_WORLD = World(biome_px=4096, transition_px=1024)
