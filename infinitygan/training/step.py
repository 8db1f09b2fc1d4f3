"""One training iteration: its phases (D main, lazy R1, G main, lazy path length; see
phases.py) in order, then the counters and the EMA.

Fake patches are produced exactly as the canvas renderer would produce the same canvas rows
(`fake_inputs` builds a latent window on the same cell lattice), with torch.randn latents and
training-time coordinate jitter instead of the seeded hash.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from ..data.patches import PatchSampler, sample_rows, vertical_label
from ..model import geometry
from ..model.config import GeneratorConfig
from ..model.coords import coord_grid
from ..model.networks import Generator
from . import losses
from .augment import diff_augment, parse_policy
from .phases import Phase, iteration_phases
from .state import TrainState


@dataclass
class FakeInputs:
    z_global: torch.Tensor  # [B, Z]
    z_mix: torch.Tensor  # [B, Z] second latent for style mixing
    mix_index: int  # W+ rows >= mix_index come from z_mix (n_styles: no mixing)
    z_local: torch.Tensor  # [B, Cl, H, W]
    coords: torch.Tensor  # [B, 3, H, W]
    labels: torch.Tensor  # [B] vertical labels


def fake_inputs(
    cfg: GeneratorConfig, batch: int, mixing_prob: float, gen: torch.Generator, device
) -> FakeInputs:
    """Pairs (0,1), (2,3), ... share z_g, position and jitter, and differ only in z_l (the
    diversity loss compares them)."""
    half = batch // 2
    rows = sample_rows(half, cfg, gen)
    m = geometry.structure_margin(cfg)
    n = cfg.train_patch_cells + geometry.TEXTURE_MARGIN + 2 * m
    grids = []
    for i in range(half):
        row0 = -cfg.train_full_cells // 2 + int(rows[i]) - m
        col0 = int(torch.randint(0, cfg.coord_period_cells, (1,), generator=gen)) - m
        shift = torch.rand(2, generator=gen) - 0.5
        grids.append(
            coord_grid(
                row0,
                col0,
                n,
                n,
                cfg.coord_vertical_scale,
                cfg.coord_period_cells,
                float(shift[0]),
                float(shift[1]),
            )
        )
    coords = torch.stack(grids).repeat_interleave(2, dim=0)
    z_global = torch.randn(half, cfg.z_dim).repeat_interleave(2, dim=0)
    z_mix = torch.randn(half, cfg.z_dim).repeat_interleave(2, dim=0)
    mix_index = cfg.n_styles
    if float(torch.rand(1, generator=gen)) < mixing_prob:
        mix_index = int(torch.randint(1, cfg.n_styles, (1,), generator=gen))
    z_local = torch.randn(batch, cfg.z_local_dim, n, n)
    labels = vertical_label(rows, cfg).repeat_interleave(2)
    cl = torch.channels_last  # the generator's fast layout, as the canvas renderer feeds it
    return FakeInputs(
        z_global.to(device),
        z_mix.to(device),
        mix_index,
        z_local.to(device).contiguous(memory_format=cl),
        coords.to(device).contiguous(memory_format=cl),
        labels.to(device),
    )


class GeneratorStep(nn.Module):
    """What DistributedDataParallel wraps: the generator with style mixing in one forward,
    returning the patch (cropped like a canvas tile), z_S for the diversity loss and W+ for
    path length."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, inp: FakeInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.generator
        w_plus = g.styles(inp.z_global, (inp.z_mix, inp.mix_index))
        img, z_s = g.synthesize(inp.z_global, inp.z_local, inp.coords, w_plus, impl="batched")
        patch = g.cfg.train_patch_cells * g.cfg.pixels_per_cell
        return img[:, :, :patch, :patch], z_s, w_plus


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def ema_beta(state: TrainState) -> float:
    cfg = state.cfg
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup > 0:
        ema_nimg = min(ema_nimg, state.images_seen * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    ema_params, params = list(ema.parameters()), list(model.parameters())
    assert len(ema_params) == len(params)
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)  # one call, not one per parameter


@dataclass
class _Iteration:
    """What the phases of one iteration share: the networks as the step calls them, and the
    real batch (drawn once; the main D phase and R1 both read it)."""

    state: TrainState
    g_step: nn.Module
    d_net: nn.Module
    device: torch.device
    autocast: torch.autocast | None
    policy: list[str]
    real_img: torch.Tensor
    real_labels: torch.Tensor

    def D(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d_net(diff_augment(x, self.policy))

    def fakes(self, batch: int) -> FakeInputs:
        cfg = self.state.cfg
        gcfg = self.state.model.generator
        return fake_inputs(gcfg, batch, cfg.mixing_prob, self.state.data_gen, self.device)

    def amp(self) -> AbstractContextManager:
        """bf16 autocast where enabled, for the main phases (the regularisers run in fp32)."""
        return self.autocast if self.autocast is not None else torch.autocast("cpu", enabled=False)


PhaseLoss = tuple[torch.Tensor, dict[str, float]]  # the loss to back-propagate, its stats


def _d_main(it: _Iteration) -> PhaseLoss:
    cfg = it.state.cfg
    inp = it.fakes(cfg.batch)
    with it.amp():
        with torch.no_grad():
            fake_img = it.g_step(inp)[0]
        real_pred, real_coord = it.D(it.real_img)
        fake_pred, fake_coord = it.D(fake_img.detach())
        adv = losses.d_logistic_loss(real_pred.float(), fake_pred.float())
        coord = losses.coord_loss(real_coord.float(), it.real_labels) + losses.coord_loss(
            fake_coord.float(), inp.labels
        )
        loss = adv + cfg.coord_weight * coord
    return loss, {
        "d_adv": adv.item(),
        "d_coord": coord.item(),
        "real_score": real_pred.mean().item(),
        "fake_score": fake_pred.mean().item(),
    }


def _d_reg(it: _Iteration) -> PhaseLoss:
    real_img = it.real_img.detach().requires_grad_(True)
    real_pred, r1_coord = it.D(real_img)
    r1 = losses.d_r1_penalty(real_pred, real_img)
    # The zero terms put every D parameter (the coordinate head too) in the graph: DDP waits
    # for a gradient of each before it can finish the iteration's reduction.
    unused = 0 * (real_pred[0] + r1_coord[0])
    return it.state.cfg.r1_gamma / 2 * r1 + unused, {"r1": r1.item()}


def _g_main(it: _Iteration) -> PhaseLoss:
    cfg = it.state.cfg
    inp = it.fakes(cfg.batch)
    with it.amp():
        fake_img, z_s, _ = it.g_step(inp)
        fake_pred, fake_coord = it.D(fake_img)
        adv = losses.g_nonsaturating_loss(fake_pred.float())
        coord = losses.coord_loss(fake_coord.float(), inp.labels)
        div = losses.diversity_loss(z_s.float(), inp.z_local)
        loss = adv + cfg.coord_weight * coord + cfg.diversity_weight * div
    return loss, {"g_adv": adv.item(), "g_coord": coord.item(), "diversity": div.item()}


def _g_reg(it: _Iteration) -> PhaseLoss:
    state = it.state
    cfg = state.cfg
    inp = it.fakes(max(2, cfg.batch // cfg.path_batch_shrink // 2 * 2))
    fake_img, _, w_plus = it.g_step(inp)
    penalty, state.mean_path_length, lengths = losses.path_length_penalty(
        fake_img, w_plus, state.mean_path_length, cfg.path_decay
    )
    # the zero term, as in _d_reg: every G parameter in the graph for DDP
    loss = cfg.path_weight * penalty + 0 * fake_img[0, 0, 0, 0]
    return loss, {"path": penalty.item(), "path_length": lengths.mean().item()}


PHASE_LOSSES: dict[str, Callable[[_Iteration], PhaseLoss]] = {
    "D_main": _d_main,
    "D_reg": _d_reg,
    "G_main": _g_main,
    "G_reg": _g_reg,
}


def _run_phase(phase: Phase, it: _Iteration) -> dict[str, float]:
    """Only the phase's network takes gradients; its loss, times the phase's gain, takes one
    optimiser step."""
    state = it.state
    _requires_grad(state.G, phase.network == "G")
    _requires_grad(state.D, phase.network == "D")
    loss, stats = PHASE_LOSSES[phase.name](it)
    opt = state.opt_g if phase.network == "G" else state.opt_d
    opt.zero_grad(set_to_none=True)
    (loss * phase.gain).backward()
    opt.step()
    return stats


def train_step(
    state: TrainState,
    sampler: PatchSampler,
    g_step: nn.Module,
    d_net: nn.Module,
    device: torch.device,
    autocast: torch.autocast | None = None,
) -> dict[str, float]:
    """One iteration. `g_step` / `d_net` are the (possibly DDP-wrapped) GeneratorStep and D."""
    cfg = state.cfg
    real = sampler.sample(cfg.batch, state.data_gen)
    it = _Iteration(
        state,
        g_step,
        d_net,
        device,
        autocast,
        parse_policy(cfg.augment),
        real.images.to(device),
        real.labels.to(device),
    )
    stats: dict[str, float] = {}
    for phase in iteration_phases(cfg):
        if phase.due(state.step):
            stats |= _run_phase(phase, it)
    state.step += 1
    state.images_seen += cfg.batch
    update_ema(state.G_ema, state.G, ema_beta(state))
    _requires_grad(state.D, True)
    return stats
