"""The four phases of a training iteration as data, as in StyleGAN2-ADA's and StyleGAN3's
training loops: which network each phase updates, how often it runs, and the two scalings that
running a regulariser lazily implies.

Lazy regularisation (StyleGAN2, Karras et al. 2020, appendix B): R1 (D) and path length (G) are
computed only every `interval` iterations, so

- the regulariser's loss is multiplied by its interval (`Phase.gain`), which keeps its average
  strength per iteration what it would be if it ran every time;
- that network's optimiser takes interval + 1 steps per `interval` iterations, so its Adam runs
  with lr * c and betas ** c, c = interval / (interval + 1) (`lazy_adam`), which keeps the
  learning rate and the moment decay per iteration what they would be without the extra steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from ..model.config import TrainConfig

Network = Literal["G", "D"]
ADAM_BETAS = (0.0, 0.99)  # StyleGAN2's: no first-moment momentum


@dataclass(frozen=True)
class Phase:
    name: str  # "D_main", "D_reg", "G_main" or "G_reg"
    network: Network  # whose parameters the phase's optimiser step updates
    interval: int  # runs on iterations that are multiples of this (1: every iteration)

    def due(self, step: int) -> bool:
        return step % self.interval == 0

    @property
    def gain(self) -> int:
        """What the phase's loss is multiplied by before backward: its interval (1 for a main
        phase, so the main losses are unscaled)."""
        return self.interval


class Phases(NamedTuple):
    """One iteration's phases, in the order they run (iterating yields them in that order)."""

    d_main: Phase  # logistic loss + vertical-coordinate loss on real and fake patches
    d_reg: Phase  # R1 on real patches
    g_main: Phase  # non-saturating loss + coordinate loss + diversity loss
    g_reg: Phase  # path-length regularisation


def iteration_phases(cfg: TrainConfig) -> Phases:
    return Phases(
        Phase("D_main", "D", 1),
        Phase("D_reg", "D", cfg.r1_every),
        Phase("G_main", "G", 1),
        Phase("G_reg", "G", cfg.path_every),
    )


def lazy_adam(params: Iterable[torch.nn.Parameter], lr: float, reg: Phase) -> torch.optim.Adam:
    """Adam for the network that `reg` regularises, with lr and betas corrected for the extra
    optimiser steps of that lazy regulariser (module docstring).

    The fused kernel (one pass per tensor instead of about eight elementwise ops: 4.6 instead
    of 15.8 ms per generator step on one CPU core) computes the same update; it needs each
    parameter, its gradient and its moments in one memory layout (a channels_last parameter
    with contiguous moments loaded from a file gets a wrong update), which holds for the
    contiguous parameters here."""
    c = reg.interval / (reg.interval + 1)
    return torch.optim.Adam(params, lr=lr * c, betas=tuple(b**c for b in ADAM_BETAS), fused=True)
