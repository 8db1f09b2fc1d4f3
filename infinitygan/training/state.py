"""Resumable training state: models, EMA, optimisers, counters and RNG streams in one
safetensors file (tensors) with JSON metadata (everything else). Never pickled; replaced
atomically, so an interrupted save leaves the previous state intact."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..model.checkpoint import atomic_write, safetensors_metadata
from ..model.config import ModelPreset, TrainConfig, preset
from ..model.networks import Discriminator, Generator
from .phases import iteration_phases, lazy_adam

STATE_FORMAT = "infinitygan-train-state"
STATE_VERSION = "1"


class StateError(Exception):
    """A training-state file that cannot be resumed from."""


@dataclass
class TrainState:
    cfg: TrainConfig  # resolved (TrainConfig.resolved)
    model: ModelPreset
    G: Generator
    D: Discriminator
    G_ema: Generator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    data_gen: torch.Generator
    step: int = 0
    images_seen: int = 0
    wall_seconds: float = 0.0
    mean_path_length: torch.Tensor = field(default_factory=lambda: torch.zeros(()))


def new_state(cfg: TrainConfig, device: torch.device) -> TrainState:
    """Freshly initialised networks and optimisers for `cfg` (resolved: see TrainConfig)."""
    cfg = cfg.resolved()
    torch.manual_seed(cfg.seed)
    model = preset(cfg.preset)
    gcfg = model.generator
    # conv weights in channels_last like the activations, so no conv reorders its weight on
    # every call (saved files are contiguous either way; loaded moments follow, see below)
    cl = torch.channels_last
    G = Generator(gcfg).to(device, memory_format=cl)
    patch = gcfg.train_patch_cells * gcfg.pixels_per_cell
    D = Discriminator(model.discriminator, patch).to(device, memory_format=cl)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    data_gen = torch.Generator().manual_seed(cfg.seed)
    phases = iteration_phases(cfg)
    return TrainState(
        cfg,
        model,
        G,
        D,
        G_ema,
        lazy_adam(G.parameters(), cfg.lr, phases.g_reg),
        lazy_adam(D.parameters(), cfg.lr, phases.d_reg),
        data_gen,
    )


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, keys = {}, {}
    for pid, st in sd["state"].items():
        keys[str(pid)] = list(st)
        for k, v in st.items():
            tensors[f"{prefix}.{pid}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"], "keys": keys}


def _optimizer_state(prefix: str, meta: dict, tensors: dict) -> dict[str, Any]:
    state = {
        int(pid): {k: tensors[f"{prefix}.{pid}.{k}"] for k in ks}
        for pid, ks in meta["keys"].items()
    }
    return {"state": state, "param_groups": meta["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """The saved optimiser state, computed the way this code computes it.

    load_state_dict takes every group setting from the file, the kernel choice too (a state
    saved by an older version would switch the fused Adam back to its per-op loop), and keeps
    the file's contiguous layout for the moments, while the fused kernel needs them laid out
    like their (channels_last) parameters. The moments come from the file; the kernel, the
    layout and the run settings (learning rate and betas, so `--lr` can decay a resumed run)
    stay this code's."""
    kept = ("fused", "foreach", "lr", "betas")
    kernels = [{k: g[k] for k in kept if k in g} for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, chosen in zip(opt.param_groups, kernels, strict=True):
        group.update(chosen)
    for p, st in opt.state.items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.shape == p.shape:
                st[k] = torch.empty_like(p).copy_(v)


def save_state(state: TrainState, path: Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name in ("G", "D", "G_ema"):
        module = getattr(state, name)
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
    g_t, g_meta = _optimizer_tensors("opt_g", state.opt_g)
    d_t, d_meta = _optimizer_tensors("opt_d", state.opt_d)
    tensors |= g_t | d_t
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = state.data_gen.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors["mean_path_length"] = state.mean_path_length.detach().cpu().reshape(())
    meta = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "train_config": json.dumps(state.cfg.to_dict()),
        "step": str(state.step),
        "images_seen": str(state.images_seen),
        "wall_seconds": repr(state.wall_seconds),
        "opt_g": json.dumps(g_meta),
        "opt_d": json.dumps(d_meta),
    }
    atomic_write(path, save_bytes(tensors, metadata=meta))


def load_state(path: Path, cfg: TrainConfig, device: torch.device) -> TrainState:
    """Resume from `path`. The model preset must match; run settings come from `cfg`."""
    try:
        data = path.read_bytes()
        tensors = load_bytes(data)
        meta = safetensors_metadata(data)
    except (OSError, SafetensorError, ValueError) as e:
        raise StateError(f"{path}: cannot read training state ({e})") from e
    if meta.get("format") != STATE_FORMAT or meta.get("format_version") != STATE_VERSION:
        raise StateError(f"{path}: not an infinitygan training state (version {STATE_VERSION})")
    saved = json.loads(meta["train_config"])
    if saved["preset"] != cfg.preset:
        raise StateError(f"{path}: state is for preset {saved['preset']!r}, not {cfg.preset!r}")
    state = new_state(cfg, device)
    try:
        for name in ("G", "D", "G_ema"):
            prefix = f"{name}."
            sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            getattr(state, name).load_state_dict(sd)
        for name in ("opt_g", "opt_d"):
            saved = _optimizer_state(name, json.loads(meta[name]), tensors)
            _load_optimizer(getattr(state, name), saved)
    except (RuntimeError, KeyError, ValueError) as e:
        raise StateError(f"{path}: training state does not match the model: {e}") from e
    torch.set_rng_state(tensors["rng.torch"])
    state.data_gen.set_state(tensors["rng.data"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    state.mean_path_length = tensors["mean_path_length"].to(device)
    state.step = int(meta["step"])
    state.images_seen = int(meta["images_seen"])
    state.wall_seconds = float(meta["wall_seconds"])
    return state
