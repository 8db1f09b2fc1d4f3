"""The training loop as a process: Ctrl-C finishes the iteration, saves and exits 0 with the run
directory complete; torchrun/DDP on CPU (gloo) trains and writes its state; a bad data folder is
a clear CLI error."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from infinitygan.model.checkpoint import load_generator
from infinitygan.model.config import PRESETS, TrainConfig
from infinitygan.training.state import load_state
from tests.training.conftest import CPU, tiny_cfg

REPO = Path(__file__).resolve().parents[2]


def test_cli_reports_a_bad_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from infinitygan.cli import main

    rc = main(["train", "--preset", "tiny", "--data", str(tmp_path / "nope"), "--run-dir",
               str(tmp_path / "run"), "--device", "cpu"])  # fmt: skip
    assert rc == 2
    assert "training data folder not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written before the data is checked


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
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["preset"] == "tiny"
    assert config["train"]["r1_gamma"] == PRESETS["tiny"].r1_gamma  # written resolved
    assert set(config) == {"train", "model"}
    assert set(config["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}


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
