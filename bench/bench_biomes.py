"""What biomes cost: seconds per tile of a metatile inside a biome and in a transition zone, each
against the same metatile with biomes off, measured side by side in one run.

The renderer takes the fused kernels wherever one anchor has weight 1 over a metatile's whole
window (inside a biome: the only extra work is evaluating the blend weights), and the spatial
kernels where two anchors meet (per-column modulation and demodulation: two more passes over
each activation). Targets: inside a biome <= 1.05x of biomes off, transition <= 2x.

Rounds alternate the four renders (off / inside, off / transition, in a rotating order) so each
ratio pairs measurements taken moments apart on a shared CPU; the figures are medians over the
rounds. Also printed: the share of the horizon's metatiles that lie in a transition window, and
the mean cost along the horizon that follows (what a traveller's tiles cost on average).

    .venv/bin/python bench/bench_biomes.py [--rounds 7] [--threads 2] [--pause-pid-file PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from machine import cpu_flags, cpu_name, paused  # bench/, beside this script

from infinitygan.malloc_tuning import keep_render_memory
from infinitygan.model.canvas import CanvasRenderer, Rect, anchors_reaching
from infinitygan.model.checkpoint import DEFAULT_CHECKPOINT, load_generator
from infinitygan.model.config import PRESETS
from infinitygan.model.networks import Generator
from infinitygan.model.world import DEFAULT_WORLD, ONE_STYLE, World

TILE = 256


def _time(render: CanvasRenderer, seed: int, rect: Rect) -> float:
    t = time.perf_counter()
    render([(seed, rect)])
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_CHECKPOINT))
    p.add_argument("--preset", help="random weights of this preset instead of the checkpoint")
    p.add_argument("--biome-px", type=int, default=DEFAULT_WORLD.biome_px)
    p.add_argument("--transition-px", type=int, default=DEFAULT_WORLD.transition_px)
    p.add_argument("--metatile", type=int, default=4, help="tiles per metatile side")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pause-pid-file", type=Path, help="SIGSTOP this pid while measuring")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    keep_render_memory()  # as the tile server runs
    if args.preset:
        torch.manual_seed(0)
        g = Generator(PRESETS[args.preset].generator).eval().requires_grad_(False)
        source = f"random {args.preset}"
    else:
        g = load_generator(args.checkpoint, "cpu").generator
        source = str(args.checkpoint)
    world = World(args.biome_px, args.transition_px)
    side = args.metatile * TILE
    span = max(4 * world.biome_px // side, 8)
    row = [Rect(i * side, -side // 2, side, side) for i in range(span)]  # along the horizon
    counts = [anchors_reaching(g.cfg, world, args.seed, r) for r in row]
    if 1 not in counts or max(counts) < 2:
        p.error(f"no metatile of {side} px lies inside a biome of {world.biome_px} px")
    inside = row[counts.index(1)]
    across = row[next(i for i, c in enumerate(counts) if c >= 2)]
    share = sum(c >= 2 for c in counts) / len(counts)

    print(f"# CPU: {cpu_name()} ({cpu_flags()}), {args.threads} threads, torch {torch.__version__}")
    print(f"# generator: {source}; world {world.tag}; metatile {side}x{side} px; seed {args.seed}")
    off, biomes = CanvasRenderer(g, ONE_STYLE), CanvasRenderer(g, world)
    cases = {
        "off (inside rect)": (off, inside),
        "inside a biome": (biomes, inside),
        "off (transition rect)": (off, across),
        "transition": (biomes, across),
    }
    pid = int(args.pause_pid_file.read_text()) if args.pause_pid_file else None
    times: dict[str, list[float]] = {name: [] for name in cases}
    with ExitStack() as stack:
        stack.enter_context(paused(pid))
        for render, rect in cases.values():  # warm-up: first-call allocations
            render([(args.seed, rect)])
        names = list(cases)
        for r in range(args.rounds):
            for name in names[r % 4 :] + names[: r % 4]:
                render, rect = cases[name]
                times[name].append(_time(render, args.seed, rect))
    tiles = args.metatile**2
    print(f"{'case':24s} {'s/tile':>8s} {'min':>8s} {'max':>8s}")
    for name, ts in times.items():
        per = [t / tiles for t in ts]
        print(f"{name:24s} {statistics.median(per):8.4f} {min(per):8.4f} {max(per):8.4f}")
    inside_ratio = statistics.median(
        a / b for a, b in zip(times["inside a biome"], times["off (inside rect)"], strict=True)
    )
    across_ratio = statistics.median(
        a / b for a, b in zip(times["transition"], times["off (transition rect)"], strict=True)
    )
    print(f"inside a biome / off: {inside_ratio:.3f} (target <= 1.05)")
    print(f"transition / off:     {across_ratio:.3f} (target <= 2)")
    mean = (1 - share) * inside_ratio + share * across_ratio
    print(
        f"horizon metatiles in a transition window: {share:.0%} of {len(row)}; "
        f"mean cost along the horizon: {mean:.3f}x of biomes off"
    )


if __name__ == "__main__":
    main()
