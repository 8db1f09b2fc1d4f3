"""One training iteration on the tiny preset: every phase runs when due and moves its network,
every loss is finite, and fake inputs come in diversity pairs on the rows their label names."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from infinitygan.data.patches import PatchSampler, vertical_label
from infinitygan.model import geometry
from infinitygan.training.state import new_state
from infinitygan.training.step import GeneratorStep, fake_inputs
from tests.training.conftest import CPU, TINY, run_steps, snapshot, tiny_cfg


def test_every_loss_and_regulariser_runs_and_is_finite(data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(data_dir, tmp_path)
    state = new_state(cfg, CPU)
    sampler = PatchSampler(data_dir, TINY)
    before = snapshot(state)
    stats = run_steps(state, sampler, 3)

    every = {"d_adv", "d_coord", "real_score", "fake_score", "g_adv", "g_coord", "diversity"}
    lazy = {"r1", "path", "path_length"}
    assert every | lazy <= set(stats[0]), sorted(stats[0])  # step 0: both regularisers fire
    assert not lazy & set(stats[1])  # step 1: neither (every 2)
    assert lazy <= set(stats[2])
    for s in stats:
        for key, value in s.items():
            assert math.isfinite(value), (key, value)
    assert stats[0]["diversity"] > 0 and stats[0]["path_length"] > 0 and stats[0]["r1"] > 0

    after = snapshot(state)
    for prefix in ("G.", "D.", "G_ema."):
        changed = [
            k for k in after if k.startswith(prefix) and not torch.equal(after[k], before[k])
        ]
        assert changed, f"no {prefix[:-1]} parameter moved"
    for k, v in after.items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
    assert state.step == 3 and state.images_seen == 3 * cfg.batch
    assert float(state.mean_path_length) > 0


def test_regularisers_run_on_their_own_intervals(data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(data_dir, tmp_path, batch=2, r1_every=3, path_every=2)
    state = new_state(cfg, CPU)
    stats = run_steps(state, PatchSampler(data_dir, TINY), 6)
    assert [i for i, s in enumerate(stats) if "r1" in s] == [0, 3]
    assert [i for i, s in enumerate(stats) if "path" in s] == [0, 2, 4]
    assert all("d_adv" in s and "g_adv" in s for s in stats)


def test_generator_step_is_the_generator_with_style_mixing(data_dir: Path, tmp_path: Path) -> None:
    """The patch is the top-left crop of the generator's output from the mixed styles, and z_S
    is the structure it was made from (same noise: same torch seed)."""
    state = new_state(tiny_cfg(data_dir, tmp_path), CPU)
    g = state.G
    inp = fake_inputs(TINY, 4, 1.0, torch.Generator().manual_seed(2), CPU)
    assert inp.mix_index < TINY.n_styles  # mixing_prob 1: some rows come from z_mix
    torch.manual_seed(5)
    patch, z_s, w_plus = GeneratorStep(g)(inp)
    torch.manual_seed(5)
    expect_w = g.styles(inp.z_global, (inp.z_mix, inp.mix_index))
    rgb, expect_z_s = g.synthesize(inp.z_global, inp.z_local, inp.coords, expect_w)
    side = TINY.train_patch_cells * TINY.pixels_per_cell
    assert patch.shape == (4, 3, side, side)
    assert torch.equal(patch, rgb[:, :, :side, :side])
    assert torch.equal(z_s, expect_z_s) and torch.equal(w_plus, expect_w)


def test_fake_inputs_sit_on_the_rows_their_label_names() -> None:
    """Real and fake share one label: a fake labelled like a real patch cut o cells below the
    image top is generated from canvas cell rows -full/2 + o (+ jitter within the cell)."""
    m = geometry.structure_margin(TINY)
    span = TINY.train_full_cells - TINY.train_patch_cells
    inp = fake_inputs(TINY, 64, 0.5, torch.Generator().manual_seed(1), CPU)
    offsets = ((inp.labels + 1) / 2 * span).round().to(torch.int64)
    assert torch.allclose(vertical_label(offsets, TINY), inp.labels)
    scale = TINY.coord_vertical_scale
    for i in range(len(offsets)):
        row = -TINY.train_full_cells // 2 + int(offsets[i])  # first patch cell row
        v = float(inp.coords[i, 0, m, m])  # vertical coordinate there (after G_S margin)
        lo, hi = math.tanh(scale * row), math.tanh(scale * (row + 1))
        assert lo - 1e-6 <= v <= hi + 1e-6, (i, row, v)
    assert torch.equal(inp.z_global[0::2], inp.z_global[1::2])  # diversity pairs
    assert not torch.equal(inp.z_local[0::2], inp.z_local[1::2])
