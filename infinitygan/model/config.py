"""Frozen model configurations and the named presets (`tiny`, `small`, `paper`).

Only the generator and discriminator constructors read these; every size that follows from them
(layer sizes, margins, cell <-> pixel) is computed in `geometry.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of G = (mapping, structure synthesizer G_S, texture synthesizer G_T).

    `texture_channels[i]` is the width of the i-th up-block of G_T; their count k fixes the
    scale: one latent cell becomes exactly 2**k output pixels.
    """

    z_dim: int = 256  # z_g, the global latent (raw input of G_S, input of the mapping net)
    z_local_dim: int = 64  # channels of the local latent z_l (one vector per latent cell)
    n_mapping: int = 4  # EqualLinear layers of the mapping network
    mapping_lr_mul: float = 0.01
    structure_channels: int = 128  # G_S width; z_S = G_S output
    structure_layers: int = 3
    structure_radius: int = 2  # feature unfolding radius: (2r+1)x(2r+1) modulated conv
    texture_channels: tuple[int, ...] = (256, 128, 64, 32)
    coord_vertical_scale: float = 0.5  # vertical coordinate = tanh(scale * (cell row + 0.5))
    coord_period_cells: int = 64  # horizontal coordinates repeat every this many latent cells
    train_patch_cells: int = 4  # D sees patches of train_patch_cells * 2**k pixels
    train_full_cells: int = 8  # one training image spans this many cell rows around y = 0

    def __post_init__(self) -> None:
        if not self.texture_channels:
            raise ValueError("texture_channels must name at least one up-block")
        if self.train_full_cells < self.train_patch_cells:
            raise ValueError("train_full_cells must be >= train_patch_cells")
        if self.train_full_cells % 2:
            raise ValueError("train_full_cells must be even (the image is centred on y = 0)")
        if min(self.z_dim, self.z_local_dim, self.structure_channels, self.coord_period_cells) < 1:
            raise ValueError("dimensions must be positive")

    @property
    def n_up(self) -> int:
        return len(self.texture_channels)

    @property
    def pixels_per_cell(self) -> int:
        return 2**self.n_up

    @property
    def band(self) -> tuple[int, int]:
        """The canvas rows [y0, y1) one training image stands for, centred on the horizon:
        what the model has seen; above and below it only extends sky and ground."""
        half = self.train_full_cells * self.pixels_per_cell // 2
        return -half, half

    @property
    def n_styles(self) -> int:
        """Two modulated convs per up-block plus the final ToRGB (W+ has this many rows)."""
        return 2 * self.n_up + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown generator config fields: {sorted(unknown)}")
        values = dict(data)
        if "texture_channels" in values:
            values["texture_channels"] = tuple(values["texture_channels"])
        return cls(**values)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """StyleGAN2 residual discriminator with the auxiliary vertical-coordinate head."""

    channels: tuple[int, ...] = (64, 128, 128, 128, 128)  # after FromRGB, then one per ResBlock
    stddev_group: int = 4

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        values = dict(data)
        values["channels"] = tuple(values["channels"])
        return cls(**values)


@dataclass(frozen=True)
class ModelPreset:
    """A generator, its discriminator, and the R1 weight that suits the preset's patch size.

    R1's strength scales with the squared patch size (StyleGAN2-ADA's heuristic is
    gamma = 0.0002 * px^2 / batch): the paper's 10 suits its 101 px patches; at 64 px it keeps
    the discriminator near chance and lets pixel-level speckle through (measured on `small`).
    """

    generator: GeneratorConfig
    discriminator: DiscriminatorConfig
    r1_gamma: float = 10.0


PRESETS: dict[str, ModelPreset] = {
    # Tests: a few thousand parameters per layer, 8 px per cell, renders 256 px in milliseconds.
    "tiny": ModelPreset(
        GeneratorConfig(
            z_dim=32,
            z_local_dim=8,
            n_mapping=2,
            structure_channels=16,
            structure_layers=2,
            structure_radius=1,
            texture_channels=(32, 16, 8),
            coord_vertical_scale=0.5,
            coord_period_cells=16,
            train_patch_cells=4,
            train_full_cells=8,
        ),
        DiscriminatorConfig(channels=(16, 32, 32), stddev_group=2),
        r1_gamma=0.5,
    ),
    # The shipped, CPU-trainable checkpoint: 16 px per cell, 64 px training patches of a 128 px
    # image.
    "small": ModelPreset(GeneratorConfig(), DiscriminatorConfig(), r1_gamma=0.5),
    # The official configuration (G_S 4 x 7x7 at 256 channels, G_T 4 up-blocks at 512 channels,
    # 16 px per cell, 96 px patches of a 192 px image, period 139 cells).
    "paper": ModelPreset(
        GeneratorConfig(
            z_dim=512,
            z_local_dim=256,
            n_mapping=8,
            structure_channels=256,
            structure_layers=4,
            structure_radius=3,
            texture_channels=(512, 512, 512, 512),
            coord_vertical_scale=0.3,
            coord_period_cells=139,
            train_patch_cells=6,
            train_full_cells=12,
        ),
        DiscriminatorConfig(channels=(256, 512, 512, 512, 512), stddev_group=4),
    ),
}


def preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        choices = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown model preset {name!r}; choose one of {choices}") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model preset; written to the run directory.

    Loss weights, regularisation intervals and Adam settings follow the official InfinityGAN
    code (which takes them from StyleGAN2); the EMA half-life is in images, with a ramp-up so a
    short CPU run still averages over its recent past. Fields left None mean "the preset's":
    `resolved()` fills them in, and training only ever sees a resolved config.
    """

    preset: str = "small"
    data: str = "data/landscapes"
    run_dir: str = "runs/small"
    batch: int = 8  # even: the diversity loss pairs samples [a, a', b, b', ...]
    iterations: int = 100_000
    lr: float = 0.002
    r1_gamma: float | None = None  # None: the preset's (see ModelPreset and resolved())
    r1_every: int = 16
    path_weight: float = 2.0
    path_every: int = 4
    path_batch_shrink: int = 2
    path_decay: float = 0.01
    diversity_weight: float = 1.0
    coord_weight: float = 1.0
    mixing_prob: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    augment: str = "none"  # "none" or a DiffAugment policy such as "color,translation,cutout"
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    log_every: int = 10
    sample_every: int = 500
    save_every: int = 100
    checkpoint_every: int = 1000  # also writes the EMA generator as an inference checkpoint
    fid_every: int = 2000  # quick patch FID of the EMA generator, best one kept; 0: never
    fid_samples: int = 256  # patches per side of the quick FID
    # A state to start from when run_dir has none yet: the repo ships the shipped checkpoint's
    # training state here, so a fresh machine continues that run instead of starting over.
    resume_from: str = ""

    def __post_init__(self) -> None:
        if self.batch < 2 or self.batch % 2:
            raise ValueError(f"batch must be even and >= 2, got {self.batch}")
        positive = (
            "iterations",
            "r1_every",
            "path_every",
            "log_every",
            "sample_every",
            "save_every",
            "checkpoint_every",
            "path_batch_shrink",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fid_samples < 4 or self.fid_samples % 2:
            raise ValueError(f"fid_samples must be even and >= 4, got {self.fid_samples}")
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ValueError(f"mixing_prob must be in [0, 1], got {self.mixing_prob}")
        preset(self.preset)  # an unknown name fails here, not when training starts
        if self.r1_gamma is not None and self.r1_gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0, got {self.r1_gamma}")

    def resolved(self) -> TrainConfig:
        """This config with the preset's value in every field left None (a copy: the config
        itself never changes)."""
        if self.r1_gamma is not None:
            return self
        return dataclasses.replace(self, r1_gamma=preset(self.preset).r1_gamma)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
