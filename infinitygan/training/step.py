"""One training iteration: the D step (+ lazy R1), the G step (+ lazy path length), EMA.

Fake patches are produced exactly as the canvas renderer would produce the same canvas rows
(`fake_inputs` builds a latent window on the same cell lattice), with torch.randn latents and
training-time coordinate jitter instead of the seeded hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..model import geometry
from ..model.config import GeneratorConfig
from ..model.coords import coord_grid
from ..model.networks import Generator
from . import losses
from .augment import diff_augment, parse_policy
from .data import PatchSampler, sample_rows, vertical_label
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
    return FakeInputs(
        z_global.to(device),
        z_mix.to(device),
        mix_index,
        z_local.to(device),
        coords.to(device),
        labels.to(device),
    )


class GeneratorStep(nn.Module):
    """What DistributedDataParallel wraps: mapping + mixing + G_S + G_T in one forward, returning
    the patch (cropped like a canvas tile), z_S for the diversity loss and W+ for path length."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, inp: FakeInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.generator
        cfg = g.cfg
        w = g.broadcast_styles(g.mapping(inp.z_global))
        if inp.mix_index < cfg.n_styles:
            w2 = g.broadcast_styles(g.mapping(inp.z_mix))
            w = torch.cat((w[:, : inp.mix_index], w2[:, inp.mix_index :]), dim=1)
        z_s = g.structure(inp.z_global, inp.z_local, inp.coords)
        img = g.texture(z_s, w)
        patch = cfg.train_patch_cells * cfg.pixels_per_cell
        return img[:, :, :patch, :patch], z_s, w


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
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - beta)


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
    gcfg = state.model.generator
    policy = parse_policy(cfg.augment)
    step = state.step
    stats: dict[str, float] = {}

    def amp():
        return autocast if autocast is not None else torch.autocast("cpu", enabled=False)

    def D(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return d_net(diff_augment(x, policy))

    # ---- discriminator
    _requires_grad(state.G, False)
    _requires_grad(state.D, True)
    real = sampler.sample(cfg.batch, state.data_gen)
    real_img, real_labels = real.images.to(device), real.labels.to(device)
    inp = fake_inputs(gcfg, cfg.batch, cfg.mixing_prob, state.data_gen, device)
    with amp():
        with torch.no_grad():
            fake_img = g_step(inp)[0]
        real_pred, real_coord = D(real_img)
        fake_pred, fake_coord = D(fake_img.detach())
        adv = losses.d_logistic_loss(real_pred.float(), fake_pred.float())
        coord = losses.coord_loss(real_coord.float(), real_labels) + losses.coord_loss(
            fake_coord.float(), inp.labels
        )
        d_loss = adv + cfg.coord_weight * coord
    state.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    state.opt_d.step()
    stats |= {
        "d_adv": adv.item(),
        "d_coord": coord.item(),
        "real_score": real_pred.mean().item(),
        "fake_score": fake_pred.mean().item(),
    }

    if step % cfg.r1_every == 0:
        real_img.requires_grad_(True)
        real_pred, r1_coord = D(real_img)
        r1 = losses.d_r1_penalty(real_pred, real_img)
        state.opt_d.zero_grad(set_to_none=True)
        # The zero terms put every D parameter (the coordinate head too) in the graph: DDP
        # waits for a gradient of each before it can finish the iteration's reduction.
        unused = 0 * (real_pred[0] + r1_coord[0])
        (cfg.r1_gamma / 2 * r1 * cfg.r1_every + unused).backward()
        state.opt_d.step()
        stats["r1"] = r1.item()

    # ---- generator
    _requires_grad(state.G, True)
    _requires_grad(state.D, False)
    inp = fake_inputs(gcfg, cfg.batch, cfg.mixing_prob, state.data_gen, device)
    with amp():
        fake_img, z_s, _ = g_step(inp)
        fake_pred, fake_coord = D(fake_img)
        adv = losses.g_nonsaturating_loss(fake_pred.float())
        coord = losses.coord_loss(fake_coord.float(), inp.labels)
        div = losses.diversity_loss(z_s.float(), inp.z_local)
        g_loss = adv + cfg.coord_weight * coord + cfg.diversity_weight * div
    state.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    state.opt_g.step()
    stats |= {"g_adv": adv.item(), "g_coord": coord.item(), "diversity": div.item()}

    if step % cfg.path_every == 0:
        pl_batch = max(2, cfg.batch // cfg.path_batch_shrink // 2 * 2)
        inp = fake_inputs(gcfg, pl_batch, cfg.mixing_prob, state.data_gen, device)
        fake_img, _, w_plus = g_step(inp)
        penalty, state.mean_path_length, lengths = losses.path_length_penalty(
            fake_img, w_plus, state.mean_path_length, cfg.path_decay
        )
        state.opt_g.zero_grad(set_to_none=True)
        (cfg.path_weight * cfg.path_every * penalty + 0 * fake_img[0, 0, 0, 0]).backward()
        state.opt_g.step()
        stats |= {"path": penalty.item(), "path_length": lengths.mean().item()}

    state.step += 1
    state.images_seen += cfg.batch
    update_ema(state.G_ema, state.G, ema_beta(state))
    _requires_grad(state.D, True)
    return stats
