"""Resumable training state: save -> resume continues bit for bit; the shipped `small` state
loads into today's networks and optimisers and trains on; states that cannot be resumed from
fail clearly."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from infinitygan.data.patches import PatchSampler
from infinitygan.model.config import PRESETS, TrainConfig
from infinitygan.training.phases import iteration_phases, lazy_adam
from infinitygan.training.state import StateError, load_state, new_state, save_state
from infinitygan.training.step import GeneratorStep, train_step
from tests.conftest import write_landscapes
from tests.training.conftest import CPU, TINY, run_steps, snapshot, tiny_cfg

REPO = Path(__file__).resolve().parents[2]
SHIPPED_STATE = REPO / "checkpoints" / "training" / "small-state.safetensors"


def test_save_then_resume_continues_bit_for_bit(data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(data_dir, tmp_path)
    sampler = PatchSampler(data_dir, TINY)
    state = new_state(cfg, CPU)
    run_steps(state, sampler, 3)
    path = tmp_path / "state.safetensors"
    save_state(state, path)

    continued = run_steps(state, sampler, 3)  # (a) keep going in process
    expect = snapshot(state)

    resumed_state = load_state(path, cfg, CPU)  # (b) a fresh process would do exactly this
    assert resumed_state.step == 3
    resumed = run_steps(resumed_state, sampler, 3)

    assert resumed == continued  # identical losses, float for float
    got = snapshot(resumed_state)
    assert got.keys() == expect.keys()
    differ = [k for k in expect if not torch.equal(got[k], expect[k])]
    assert not differ, differ[:5]
    assert resumed_state.step == state.step and resumed_state.images_seen == state.images_seen


def test_a_resumed_run_takes_its_learning_rate_from_the_command_line(
    data_dir: Path, tmp_path: Path
) -> None:
    """A late learning-rate decay is a resume with a smaller `--lr`: the moments come from the
    file, the learning rate (with its lazy-regularisation correction) from the new config."""
    cfg = tiny_cfg(data_dir, tmp_path)
    state = new_state(cfg, CPU)
    run_steps(state, PatchSampler(data_dir, TINY), 2)
    path = tmp_path / "state.safetensors"
    save_state(state, path)
    decayed = dataclasses.replace(cfg, lr=cfg.lr / 4)
    resumed = load_state(path, decayed, CPU)
    phases = iteration_phases(resumed.cfg)
    for opt, before, reg in (
        (resumed.opt_g, state.opt_g, phases.g_reg),
        (resumed.opt_d, state.opt_d, phases.d_reg),
    ):
        expect = lazy_adam([torch.nn.Parameter(torch.zeros(1))], decayed.lr, reg).param_groups[0]
        assert opt.param_groups[0]["lr"] == pytest.approx(expect["lr"])
        assert opt.param_groups[0]["lr"] == pytest.approx(before.param_groups[0]["lr"] / 4)
        moments = [st["exp_avg"] for st in opt.state.values()]
        assert moments and all(
            torch.equal(m, b["exp_avg"])
            for m, b in zip(moments, before.state.values(), strict=True)
        )


def test_a_state_holds_the_resolved_config(data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(data_dir, tmp_path)
    assert cfg.r1_gamma is None
    state = new_state(cfg, CPU)
    assert state.cfg.r1_gamma == PRESETS["tiny"].r1_gamma
    assert cfg.r1_gamma is None  # the caller's config is left as it was


def test_shipped_state_resumes_and_trains_a_step(tmp_path: Path) -> None:
    """The repository's training state (parameter names, optimiser state, RNG, counters) loads
    into today's modules, its optimisers carry the lazy-regularisation correction that
    `lazy_adam` computes, and one iteration from it (both regularisers due) is finite."""
    small = PRESETS["small"].generator
    data = write_landscapes(tmp_path / "data", n=2, size=(200, 128))
    cfg = TrainConfig(preset="small", data=str(data), run_dir=str(tmp_path), batch=2, device="cpu")
    state = load_state(SHIPPED_STATE, cfg, CPU)
    assert state.step > 0 and state.images_seen == 8 * state.step  # shipped at batch 8
    phases = iteration_phases(state.cfg)
    # the next iteration at which both lazy regularisers run
    every = math.lcm(phases.d_reg.interval, phases.g_reg.interval)
    due = state.step = -(-state.step // every) * every
    for opt, reg in ((state.opt_g, phases.g_reg), (state.opt_d, phases.d_reg)):
        expect = lazy_adam([torch.nn.Parameter(torch.zeros(1))], cfg.lr, reg).param_groups[0]
        group = opt.param_groups[0]
        assert group["lr"] == expect["lr"] and tuple(group["betas"]) == expect["betas"]
        assert group["fused"] == expect["fused"]  # saved with fused=None: the kernel is ours
    assert phases.d_reg.due(state.step) and phases.g_reg.due(state.step)

    stats = train_step(state, PatchSampler(data, small), GeneratorStep(state.G), state.D, CPU)
    assert {"r1", "path"} <= set(stats)
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert state.step == due + 1


def test_a_state_of_another_preset_is_refused(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "state.safetensors"
    save_state(new_state(tiny_cfg(data_dir, tmp_path), CPU), path)
    with pytest.raises(StateError, match="preset 'tiny', not 'small'"):
        load_state(path, TrainConfig(preset="small", device="cpu"), CPU)


def test_an_unreadable_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(StateError, match="cannot read training state"):
        load_state(path, TrainConfig(preset="tiny", device="cpu"), CPU)
