"""Training on the tiny preset and a synthetic image folder: every loss and regulariser runs and
is finite; save -> resume continues bit for bit; real patches carry the label of the rows they
were cut from (and fakes the matching coordinates); bad data folders fail clearly; Ctrl-C saves
and exits 0; torchrun/DDP on CPU (gloo) trains and writes its state."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infinitygan.model import geometry
from infinitygan.model.checkpoint import load_generator
from infinitygan.model.config import PRESETS, TrainConfig
from infinitygan.training.data import DataError, PatchSampler, load_folder, vertical_label
from infinitygan.training.state import load_state, new_state, save_state
from infinitygan.training.step import GeneratorStep, fake_inputs, train_step
from tests.conftest import write_landscapes

TINY = PRESETS["tiny"].generator
FULL_PX = TINY.train_full_cells * TINY.pixels_per_cell  # 64: a training image's height
PATCH_PX = TINY.train_patch_cells * TINY.pixels_per_cell  # 32
CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs gain nothing from threads, and on a busy 2-core machine OpenMP's spinning
    threads make a 0.2 s step take 20 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
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


def run_steps(state, sampler: PatchSampler, n: int) -> list[dict[str, float]]:
    g_step = GeneratorStep(state.G)
    return [train_step(state, sampler, g_step, state.D, CPU) for _ in range(n)]


def snapshot(state) -> dict[str, torch.Tensor]:
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


# ---------------------------------------------------------------- losses and regularisers


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


# ---------------------------------------------------------------- resume


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


# ---------------------------------------------------------------- data pipeline


def test_vertical_labels_match_where_the_patch_was_cut(tmp_path: Path) -> None:
    """Images exactly one training image high whose red channel is 4 x the row index (green:
    the image number), so every patch says which rows it came from."""
    folder = tmp_path / "rows"
    folder.mkdir()
    for i in range(3):
        img = np.zeros((FULL_PX, 90 + 10 * i, 3), dtype=np.uint8)
        img[:, :, 0] = (4 * np.arange(FULL_PX))[:, None]
        img[:, :, 1] = 50 * i
        Image.fromarray(img).save(folder / f"{i}.png")
    sampler = PatchSampler(folder, TINY)
    batch = sampler.sample(256, torch.Generator().manual_seed(0))
    pixels = ((batch.images + 1) * 127.5).round().to(torch.int64)  # [B, 3, P, P]
    span = TINY.train_full_cells - TINY.train_patch_cells
    ppc = TINY.pixels_per_cell

    assert set(batch.row_cells.tolist()) == set(range(span + 1))  # every offset occurs
    for i in range(len(pixels)):
        top = int(batch.row_cells[i]) * ppc
        expect_rows = 4 * torch.arange(top, top + PATCH_PX)
        assert torch.equal(pixels[i, 0], expect_rows[:, None].expand(PATCH_PX, PATCH_PX)), i
    assert torch.equal(batch.labels, batch.row_cells.float() / span * 2 - 1)
    assert batch.labels.min() == -1.0 and batch.labels.max() == 1.0
    top_patches = batch.labels == -1.0
    assert (pixels[top_patches, 0, 0] == 0).all()  # label -1 = cut at the image top


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


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "nope", 64)


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images"):
        load_folder(tmp_path, 64)


def test_unreadable_images_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff truncated")
    with pytest.raises(DataError, match="none of the 2 images could be read"):
        load_folder(tmp_path, 64)


def test_unreadable_files_are_skipped_when_some_images_load(tmp_path: Path) -> None:
    write_landscapes(tmp_path, n=2)
    (tmp_path / "broken.png").write_bytes(b"garbage")
    assert len(load_folder(tmp_path, FULL_PX)) == 2


def test_cli_reports_a_bad_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from infinitygan.cli import main

    rc = main(["train", "--preset", "tiny", "--data", str(tmp_path / "nope"), "--run-dir",
               str(tmp_path / "run"), "--device", "cpu"])  # fmt: skip
    assert rc == 2
    assert "training data folder not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "gamma"),
    [
        (["--preset", "paper"], 10.0),  # the paper's weight for its 101 px patches
        (["--preset", "small"], 0.5),  # 64 px patches: what the shipped checkpoint trains with
        (["--preset", "paper", "--r1-gamma", "2.5"], 2.5),
    ],
)
def test_r1_weight_follows_the_preset_unless_given(
    argv: list[str], gamma: float, capsys: pytest.CaptureFixture
) -> None:
    from infinitygan.cli import main

    assert main(["train", *argv, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["r1_gamma"] == gamma


def test_negative_r1_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="r1_gamma"):
        TrainConfig(r1_gamma=-1.0)


# ---------------------------------------------------------------- processes


def _train_argv(data: Path, run_dir: Path, iterations: int) -> list[str]:
    return [
        "train",
        "--preset", "tiny",
        "--data", str(data),
        "--run-dir", str(run_dir),
        "--batch", "2",
        "--iterations", str(iterations),
        "--log-every", "1",
        "--save-every", "100000",
        "--sample-every", "100000",
        "--checkpoint-every", "100000",
        "--device", "cpu",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def test_ctrl_c_saves_and_exits_cleanly(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "infinitygan.cli", *_train_argv(data_dir, run_dir, 10**6)]
    proc = subprocess.Popen(
        argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    log = run_dir / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and log.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started iterating"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "stopped at iteration" in out
    cfg = tiny_cfg(data_dir, run_dir, batch=2)
    state = load_state(run_dir / "state.safetensors", cfg, CPU)
    assert state.step >= 2
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[-1]["step"] <= state.step
    ckpt = load_generator(run_dir / "generator-ema.safetensors", device="cpu")
    assert ckpt.training["iterations"] == state.step
    assert json.loads((run_dir / "config.json").read_text())["train"]["preset"] == "tiny"


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")  # fmt: skip
def test_torchrun_ddp_two_cpu_processes(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    argv = [
        torchrun, "--standalone", "--nproc_per_node", "2", "-m", "infinitygan.cli",
        *_train_argv(data_dir, run_dir, 2),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = dataclasses.replace(tiny_cfg(data_dir, run_dir), batch=2)
    state = load_state(run_dir / "state.safetensors", cfg, CPU)
    assert state.step == 2
    for name in ("G", "D"):
        for k, v in getattr(state, name).state_dict().items():
            assert torch.isfinite(v).all(), (name, k)
    log = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2]
    load_generator(run_dir / "generator-ema.safetensors", device="cpu")
