"""Pure loss functions, tensors in and scalar tensors out: StyleGAN2's adversarial losses and
regularisers, and InfinityGAN's vertical-coordinate and diversity terms.

The diversity term is a mode-seeking *distance* ratio (MSGAN): pairs that share z_g and
coordinates but differ in z_l must differ in structure, in proportion to how much their z_l
differ. The official code uses a similarity here, which pushes the pair together instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def d_logistic_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_pred).mean()


def d_r1_penalty(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real images (multiply by gamma/2 and the lazy interval)."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def coord_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Auxiliary vertical-coordinate regression (L1)."""
    return (pred - label).abs().mean()


def diversity_loss(
    structure: torch.Tensor, z_local: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """Mode seeking over pairs (0,1), (2,3), ...: mean of 1 / (d(z_S) / d(z_l) + eps), with d the
    mean absolute difference. Minimising it spreads structures apart as z_l moves apart."""
    s = structure.flatten(1)
    z = z_local.flatten(1)
    ds = (s[0::2] - s[1::2]).abs().mean(1)
    dz = (z[0::2] - z[1::2]).abs().mean(1)
    return (1.0 / (ds / dz + eps)).mean()


def path_length_penalty(
    fake_img: torch.Tensor, w_plus: torch.Tensor, mean_path_length: torch.Tensor, decay: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regularisation w.r.t. the W+ styles.

    Returns (penalty, new running mean, per-sample path lengths)."""
    noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    (grad,) = torch.autograd.grad((fake_img * noise).sum(), w_plus, create_graph=True)
    lengths = torch.sqrt(grad.square().sum(2).mean(1) + 1e-8)  # [B]
    new_mean = mean_path_length + decay * (lengths.mean().detach() - mean_path_length)
    penalty = (lengths - new_mean).square().mean()
    return penalty, new_mean, lengths
