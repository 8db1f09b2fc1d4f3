"""Training-test helpers: the synthetic data folder, a tiny-preset config on which every phase
runs often, and the steps and snapshots the step and resume tests compare."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infinitygan.data.patches import PatchSampler
from infinitygan.model.config import PRESETS, TrainConfig
from infinitygan.training.state import TrainState
from infinitygan.training.step import GeneratorStep, train_step
from tests.conftest import write_landscapes

TINY = PRESETS["tiny"].generator
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_landscapes(tmp_path_factory.mktemp("landscapes"))


def tiny_cfg(data: Path, run_dir: Path, **overrides) -> TrainConfig:
    """Both lazy regularisers fire at step 0, 2, ...; mixing always on; all augmentations."""
    values = dict(
        preset="tiny",
        data=str(data),
        run_dir=str(run_dir),
        batch=4,
        r1_every=2,
        path_every=2,
        mixing_prob=1.0,
        augment="color,translation,cutout",
        device="cpu",
        seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)


def run_steps(state: TrainState, sampler: PatchSampler, n: int) -> list[dict[str, float]]:
    g_step = GeneratorStep(state.G)
    return [train_step(state, sampler, g_step, state.D, CPU) for _ in range(n)]


def snapshot(state: TrainState) -> dict[str, torch.Tensor]:
    """Every tensor a resumed run must reproduce: weights, EMA, optimiser moments, path mean."""
    out = {}
    for name in ("G", "D", "G_ema"):
        for k, v in getattr(state, name).state_dict().items():
            out[f"{name}.{k}"] = v.detach().clone()
    for name in ("opt_g", "opt_d"):
        for pid, st in getattr(state, name).state_dict()["state"].items():
            for k, v in st.items():
                out[f"{name}.{pid}.{k}"] = torch.as_tensor(v).clone()
    out["mean_path_length"] = state.mean_path_length.clone()
    return out
