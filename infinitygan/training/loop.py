"""The training loop: resume, iterate, log, sample, save; single process or torchrun/DDP.

Rank 0 owns every file in the run directory:
  config.json          the resolved TrainConfig and model preset
  state.safetensors    full resumable state (replaced every `save_every` iterations)
  generator-ema.safetensors  the EMA generator as an inference checkpoint
  metrics.jsonl        one JSON line every `log_every` iterations
  samples/             tile grids and a wide panorama rendered by the real canvas renderer
Ctrl-C or SIGTERM finishes the current iteration, saves, and exits cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..model.canvas import Rect, render_batch, render_region
from ..model.checkpoint import resolve_device, save_checkpoint
from ..model.config import TrainConfig, preset
from .data import PatchSampler
from .state import TrainState, load_state, new_state, save_state
from .step import GeneratorStep, train_step

SAMPLE_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def render_samples(state: TrainState, out_dir: Path) -> Path:
    """A 2x4 grid of 256 px tiles (one per seed, on the horizon) and a 2048x512 panorama."""
    out_dir.mkdir(parents=True, exist_ok=True)
    g = state.G_ema
    tiles = render_batch(g, [(s, Rect(0, -128, 256, 256)) for s in SAMPLE_SEEDS])
    grid = np.concatenate(
        [np.concatenate(list(row), axis=1) for row in tiles.reshape(2, 4, 256, 256, 3)]
    )
    Image.fromarray(grid).save(out_dir / f"grid-{state.step:07d}.png")
    pano = render_region(g, SAMPLE_SEEDS[0], Rect(0, -256, 2048, 512))
    path = out_dir / f"panorama-{state.step:07d}.png"
    Image.fromarray(pano).save(path)
    return path


def training_summary(state: TrainState, device: torch.device, world: int) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "preset": state.cfg.preset,
        "iterations": state.step,
        "images_seen": state.images_seen,
        "batch": state.cfg.batch,
        "wall_seconds": round(state.wall_seconds, 1),
        "hardware": f"{world}x {name}"
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores)",
        "data": state.cfg.data,
        "augment": state.cfg.augment,
    }


class _StopRequested:
    """SIGTERM/SIGINT set a flag; the loop saves after the current iteration."""

    def __init__(self) -> None:
        self.stop = False
        self._old = {}

    def __enter__(self) -> _StopRequested:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.stop = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(cfg: TrainConfig, resume: bool = True) -> TrainState:
    rank, world, local_rank = _distributed()
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        device = (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = resolve_device(cfg.device)
    run_dir = Path(cfg.run_dir)
    state_path = run_dir / "state.safetensors"
    sampler = PatchSampler(cfg.data, preset(cfg.preset).generator)
    if resume and state_path.exists():
        state = load_state(state_path, cfg, device)
    elif resume and cfg.resume_from:
        state = load_state(Path(cfg.resume_from), cfg, device)
    else:
        state = new_state(cfg, device)
    if world > 1:
        torch.manual_seed(cfg.seed + state.step * world + rank)
        state.data_gen.manual_seed(cfg.seed * 1000 + rank + state.step)
    main = rank == 0
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(
            json.dumps(
                {
                    "train": cfg.to_dict(),
                    "model": {
                        "generator": state.model.generator.to_dict(),
                        "discriminator": list(state.model.discriminator.channels),
                    },
                },
                indent=2,
            )
        )
    g_step: torch.nn.Module = GeneratorStep(state.G)
    d_net: torch.nn.Module = state.D
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        g_step = DistributedDataParallel(g_step, device_ids=ids, broadcast_buffers=False)
        d_net = DistributedDataParallel(d_net, device_ids=ids, broadcast_buffers=False)
    autocast = None
    if cfg.amp and device.type == "cuda":
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)

    def save(final: bool = False) -> None:
        if not main:
            return
        save_state(state, state_path)
        if final or state.step % cfg.checkpoint_every == 0:
            save_checkpoint(
                run_dir / "generator-ema.safetensors",
                state.G_ema,
                training_summary(state, device, world),
            )

    log = (run_dir / "metrics.jsonl").open("a") if main else None
    bar = tqdm(
        total=cfg.iterations,
        initial=state.step,
        disable=not main,
        unit="it",
        dynamic_ncols=True,
        desc=f"train {cfg.preset}",
    )
    t_last = time.perf_counter()
    try:
        with _StopRequested() as stopper:
            while state.step < cfg.iterations and not stopper.stop:
                stats = train_step(state, sampler, g_step, d_net, device, autocast)
                now = time.perf_counter()
                state.wall_seconds += now - t_last
                t_last = now
                bar.update(1)
                if main and state.step % cfg.log_every == 0:
                    bar.set_postfix(d=f"{stats['d_adv']:.3f}", g=f"{stats['g_adv']:.3f}")
                    rate = bar.format_dict.get("rate") or 0.0
                    log.write(
                        json.dumps(
                            {
                                "step": state.step,
                                "images": state.images_seen,
                                "wall_seconds": round(state.wall_seconds, 2),
                                "it_per_s": round(rate, 4),
                                **stats,
                            }
                        )
                        + "\n"
                    )
                    log.flush()
                if main and state.step % cfg.sample_every == 0:
                    render_samples(state, run_dir / "samples")
                if state.step % cfg.save_every == 0:
                    save()
    finally:
        bar.close()
        save(final=True)
        if log is not None:
            log.close()
        if world > 1:
            dist.destroy_process_group()
    return state
