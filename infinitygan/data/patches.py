"""Training images and patch sampling with vertical-position labels (training and evaluation
draw their real patches here, so both see the same rows and labels).

Each image is resized to `train_full_cells` cell rows (e.g. 128 px for `small`), keeping its
aspect ratio (the data fetcher's rule, `infinitygan.data.images.fit_height`), and stands for the
canvas rows [-full/2, +full/2) cells around the horizon. A real patch is cut at a *cell-aligned*
row offset, so the generator can be asked for exactly the same canvas rows: real and fake
patches share one vertical label, and the label says where the patch was cut (unlike the
official code, whose real and fake label ranges differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..model.config import GeneratorConfig
from .images import fit_height

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class DataError(Exception):
    """The training folder is missing, empty or unreadable."""


def load_image(path: Path, height: int) -> torch.Tensor:
    """[3, height, W] uint8 with W >= height: short side to `height`, wide images keep their
    whole width (the patch sampler cuts across it), portraits their centre square."""
    with Image.open(path) as im:
        im = fit_height(im, height, max_aspect=None)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def load_folder(root: str | Path, height: int) -> list[torch.Tensor]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: training data folder not found (build it with `./manage data` "
            "or point --data at a folder of images)"
        )
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    images, bad = [], []
    for path in files:
        try:
            images.append(load_image(path, height))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            bad.append(f"{path.name} ({e})")
    if not images:
        raise DataError(f"{root}: none of the {len(files)} images could be read: {bad[:3]}")
    return images


@dataclass(frozen=True)
class PatchBatch:
    images: torch.Tensor  # [B, 3, P, P] float in [-1, 1]
    row_cells: torch.Tensor  # [B] int64: patch top, in cells below the image top
    labels: torch.Tensor  # [B] float: vertical label in [-1, 1]


def vertical_label(row_cells: torch.Tensor, cfg: GeneratorConfig) -> torch.Tensor:
    """Cell offset of the patch top inside the image, mapped to [-1, 1] (the D aux target)."""
    span = cfg.train_full_cells - cfg.train_patch_cells
    if span == 0:
        return torch.zeros_like(row_cells, dtype=torch.float32)
    return row_cells.float() / span * 2.0 - 1.0


def sample_rows(batch: int, cfg: GeneratorConfig, gen: torch.Generator) -> torch.Tensor:
    """Cell-aligned row offsets of patch tops, shared by real and fake sampling."""
    span = cfg.train_full_cells - cfg.train_patch_cells
    return torch.randint(0, span + 1, (batch,), generator=gen)


class PatchSampler:
    """Random patches of a folder of images, all held in memory as uint8."""

    def __init__(self, root: str | Path, cfg: GeneratorConfig) -> None:
        self.cfg = cfg
        self.height = cfg.train_full_cells * cfg.pixels_per_cell
        self.patch = cfg.train_patch_cells * cfg.pixels_per_cell
        self.images = load_folder(root, self.height)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch: int, gen: torch.Generator, flip: bool = True) -> PatchBatch:
        rows = sample_rows(batch, self.cfg, gen)
        which = torch.randint(0, len(self.images), (batch,), generator=gen)
        flips = torch.rand(batch, generator=gen) < 0.5
        out = torch.empty(batch, 3, self.patch, self.patch, dtype=torch.uint8)
        for i in range(batch):
            img = self.images[int(which[i])]
            x0 = int(torch.randint(0, img.shape[2] - self.patch + 1, (1,), generator=gen))
            y0 = int(rows[i]) * self.cfg.pixels_per_cell
            patch = img[:, y0 : y0 + self.patch, x0 : x0 + self.patch]
            out[i] = patch.flip(2) if flip and flips[i] else patch
        images = out.float() / 127.5 - 1.0
        return PatchBatch(images, rows, vertical_label(rows, self.cfg))
