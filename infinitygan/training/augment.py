"""Differentiable augmentation for a small data set (DiffAugment, Zhao et al. 2020), applied to
real and fake patches alike before D, so D cannot memorise 27 photographs and G is not taught
the augmentations. Policies: color, translation, cutout."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (b,), device=x.device)
    tx = torch.randint(-sx, sx + 1, (b,), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + ty[:, None]).clamp(-1, h)  # [B, H]
    cols = (torch.arange(w, device=x.device)[None, :] + tx[:, None]).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))  # out-of-range reads hit the zero border
    idx_r = (rows + 1)[:, None, :, None].expand(b, x.shape[1], h, w + 2)
    out = padded.gather(2, idx_r)
    idx_c = (cols + 1)[:, None, None, :].expand(b, x.shape[1], h, w)
    return out.gather(3, idx_c)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random (ratio*H) x (ratio*W) rectangle per sample (it may hang over the edge)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(ch // 2), h - ch // 2, (b, 1, 1), device=x.device)
    left = torch.randint(-(cw // 2), w - cw // 2, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip() and p.strip() != "none"]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {sorted(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, names: list[str]) -> torch.Tensor:
    for name in names:
        x = POLICIES[name](x)
    return x
