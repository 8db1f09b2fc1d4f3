"""The training loop: resume, iterate, log, sample, save; single process or torchrun/DDP.

Rank 0 owns every file in the run directory:
  config.json          the resolved TrainConfig and model preset
  state.safetensors    full resumable state (replaced every `save_every` iterations)
  generator-ema.safetensors  the EMA generator as an inference checkpoint
  metrics.jsonl        one JSON line every `log_every` iterations, and the quick FIDs
  generator-best.safetensors, best.json   the EMA generator with the best quick FID so far
  samples/             tile grids and a wide panorama rendered by the real canvas renderer
Ctrl-C or SIGTERM finishes the current iteration, saves, and exits cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data.patches import PatchSampler
from ..eval.fid import MetricsUnavailable
from ..malloc_tuning import keep_freed_memory
from ..model.canvas import Rect, render_batch, render_region
from ..model.checkpoint import resolve_device, save_checkpoint
from ..model.config import TrainConfig, preset
from .fid_watch import BEST_CHECKPOINT, Best, FidWatch, read_best, write_best
from .state import TrainState, load_state, new_state, save_state
from .step import GeneratorStep, train_step

SAMPLE_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class Placement:
    """Where this process trains: its torchrun rank among `world` processes, and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 writes every file of the run."""
        return self.rank == 0


def join_processes(cfg: TrainConfig) -> Placement:
    """Read torchrun's environment; with more than one process, join the process group (NCCL on
    CUDA, gloo on CPU) and take this rank's GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world == 1:
        return Placement(rank, world, resolve_device(cfg.device))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        torch.cuda.set_device(device)
    return Placement(rank, world, device)


def initial_state(cfg: TrainConfig, placement: Placement, resume: bool) -> TrainState:
    """The run directory's own state if there is one, else `resume_from`, else a fresh start
    (`resume=False` always starts fresh). Under DDP every rank then reseeds its streams apart
    (they were saved by rank 0), so the ranks draw different batches."""
    state_path = Path(cfg.run_dir) / "state.safetensors"
    if resume and state_path.exists():
        state = load_state(state_path, cfg, placement.device)
    elif resume and cfg.resume_from:
        state = load_state(Path(cfg.resume_from), cfg, placement.device)
    else:
        state = new_state(cfg, placement.device)
    if placement.world > 1:
        torch.manual_seed(cfg.seed + state.step * placement.world + placement.rank)
        state.data_gen.manual_seed(cfg.seed * 1000 + placement.rank + state.step)
    return state


def write_run_config(state: TrainState, run_dir: Path) -> None:
    """config.json: the resolved TrainConfig and the model preset's architecture."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "train": state.cfg.to_dict(),
        "model": {
            "generator": state.model.generator.to_dict(),
            "discriminator": list(state.model.discriminator.channels),
        },
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))


def step_modules(
    state: TrainState, placement: Placement
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The GeneratorStep and D as `train_step` calls them: DDP-wrapped across processes."""
    g_step: torch.nn.Module = GeneratorStep(state.G)
    d_net: torch.nn.Module = state.D
    if placement.world > 1:
        device = placement.device
        ids = [device.index] if device.type == "cuda" else None
        g_step = DistributedDataParallel(g_step, device_ids=ids, broadcast_buffers=False)
        d_net = DistributedDataParallel(d_net, device_ids=ids, broadcast_buffers=False)
    return g_step, d_net


def mixed_precision(cfg: TrainConfig, device: torch.device) -> torch.autocast | None:
    """bf16 autocast on CUDA when `amp` is on; None (fp32) otherwise."""
    if cfg.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return None


def save_run(state: TrainState, placement: Placement, final: bool = False) -> None:
    """Rank 0: the resumable state every time, the EMA inference checkpoint every
    `checkpoint_every` iterations and at the end."""
    if not placement.main:
        return
    run_dir = Path(state.cfg.run_dir)
    save_state(state, run_dir / "state.safetensors")
    if final or state.step % state.cfg.checkpoint_every == 0:
        save_checkpoint(
            run_dir / "generator-ema.safetensors",
            state.G_ema,
            training_summary(state, placement.device, placement.world),
        )


def log_metrics(
    log: TextIO, state: TrainState, stats: dict[str, float], rate: float | None = None
) -> None:
    """One metrics.jsonl line: counters, wall time, speed (iterations/s, if given) and the
    iteration's losses or a quick FID."""
    line: dict[str, float] = {
        "step": state.step,
        "images": state.images_seen,
        "wall_seconds": round(state.wall_seconds, 2),
    }
    if rate is not None:
        line["it_per_s"] = round(rate, 4)
    line |= stats
    log.write(json.dumps(line) + "\n")
    log.flush()


def check_fid(
    watch: FidWatch, state: TrainState, best: Best | None, placement: Placement, log: TextIO
) -> Best | None:
    """Measure the EMA generator, log it, and keep it as the run's best if it is."""
    value = watch.measure(state.G_ema)
    log_metrics(log, state, {"quick_fid": value, "fid_samples": watch.n})
    tqdm.write(f"iteration {state.step}: quick FID {value:.1f} ({watch.n} patches)")
    if best is not None and value >= best.fid:
        return best
    run_dir = Path(state.cfg.run_dir)
    summary = training_summary(state, placement.device, placement.world)
    save_checkpoint(run_dir / BEST_CHECKPOINT, state.G_ema, summary | {"quick_fid": value})
    best = Best(state.step, state.images_seen, value, watch.n)
    write_best(run_dir, best)
    return best


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
    """What the inference checkpoint records about the run that made it."""
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
    """Train until `cfg.iterations` or a stop signal; every rank returns its final state."""
    cfg = cfg.resolved()
    keep_freed_memory()
    placement = join_processes(cfg)
    run_dir = Path(cfg.run_dir)
    # the data folder is checked before anything is loaded or written
    sampler = PatchSampler(cfg.data, preset(cfg.preset).generator)
    state = initial_state(cfg, placement, resume)
    if placement.main:
        write_run_config(state, run_dir)
    g_step, d_net = step_modules(state, placement)
    autocast = mixed_precision(cfg, placement.device)
    log = (run_dir / "metrics.jsonl").open("a") if placement.main else None
    watch = None
    if placement.main and cfg.fid_every:
        watch = FidWatch(sampler, cfg.fid_samples, cfg.seed, placement.device, "inception")
    best = read_best(run_dir, cfg.fid_samples)
    bar = tqdm(
        total=cfg.iterations,
        initial=state.step,
        disable=not placement.main,
        unit="it",
        dynamic_ncols=True,
        desc=f"train {cfg.preset}",
    )
    t_last = time.perf_counter()
    try:
        with _StopRequested() as stopper:
            while state.step < cfg.iterations and not stopper.stop:
                stats = train_step(state, sampler, g_step, d_net, placement.device, autocast)
                now = time.perf_counter()
                state.wall_seconds += now - t_last
                t_last = now
                bar.update(1)
                if log is not None and state.step % cfg.log_every == 0:
                    bar.set_postfix(d=f"{stats['d_adv']:.3f}", g=f"{stats['g_adv']:.3f}")
                    log_metrics(log, state, stats, bar.format_dict.get("rate") or 0.0)
                if placement.main and state.step % cfg.sample_every == 0:
                    render_samples(state, run_dir / "samples")
                if watch is not None and state.step % cfg.fid_every == 0:
                    try:
                        best = check_fid(watch, state, best, placement, log)
                    except MetricsUnavailable as exc:  # training goes on without it
                        tqdm.write(f"warning: no quick FID during training: {exc}")
                        watch = None
                if state.step % cfg.save_every == 0:
                    save_run(state, placement)
    finally:
        bar.close()
        save_run(state, placement, final=True)
        if log is not None:
            log.close()
        if placement.world > 1:
            dist.destroy_process_group()
    return state
