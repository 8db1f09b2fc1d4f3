"""Training-step benchmark: iterations/s of the `small` preset at batch 8, this tree against a
baseline revision, side by side in one run.

The baseline is exported with `git archive` into a temporary directory. Each tree trains in its
own long-lived subprocess (PYTHONPATH pointing at that tree), both resumed from the same shipped
training state with the same RNG streams, so both do exactly the same work: a few warm-up
iterations (the first one runs R1 and path length, so oneDNN has built every kernel), then
rounds of `--iters` timed iterations, A B A B ... The default 16 iterations are whole lazy
cycles: one R1 and four path-length steps each. A process waits, idle, while the other
measures, so the two never compete for the cores; the per-round ratio new/old pairs rounds
taken moments apart, which is what stays meaningful on a shared, possibly throttled CPU.

The "new" tree is this working tree, uncommitted changes included (`--baseline HEAD` measures
what an uncommitted change gives), or the revision `--new` names (`--baseline C~ --new C`
measures what commit C gave).

`--check N` times nothing: it runs N iterations of both trees in float32 and of the baseline in
float64 with the weights frozen and prints how far each float32 run's losses and gradients are
from the float64 ones (see `check`), the evidence that the new code computes the same thing.

Pass `--pause-pid PID` (the background trainer) to SIGSTOP it while measuring; it is resumed
on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from machine import cpu_flags, cpu_name, paused  # bench/, beside this script
from revisions import ROOT, TreeProcess, describe, exported, git

STATE = ROOT / "checkpoints" / "training" / "small-state.safetensors"
DATA = ROOT / "data" / "landscapes"
AUGMENT = "color,translation,cutout"  # the shipped run's policy (small-config.json)


# ---------------------------------------------------------------------------------------------
# the child: one tree's training loop, driven over stdin/stdout


def float64_everywhere() -> None:
    """Build every network, optimiser state and activation in float64, with the same random
    numbers as a float32 run (drawn in float32, then widened): the reference both trees'
    float32 rounding is measured against."""
    import torch

    torch.set_default_dtype(torch.float64)

    def widened(draw: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def f(*args: Any, dtype: torch.dtype | None = None, **kwargs: Any) -> torch.Tensor:
            return draw(*args, dtype=torch.float32, **kwargs).to(dtype or torch.float64)

        return f

    torch.randn, torch.rand, torch.randn_like = map(
        widened, (torch.randn, torch.rand, torch.randn_like)
    )


MODES = ("time", "check", "check-float64")


def child(threads: int, state_path: str, data: str, warmup: int, mode: str) -> None:
    """Resume `state_path` exactly as `train()` would (the loop's own helpers), then answer each
    line on stdin: "run N" with the seconds N more iterations took and their losses, "grads
    PATH" by writing the last gradient of each network there.

    The check modes freeze the weights (learning rate 0), so every phase of every iteration
    sees the same weights in each run and differences cannot compound; Adam's first moment
    with beta1 = 0 is then exactly the last gradient it was given."""
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    if mode == "check-float64":
        float64_everywhere()
    import infinitygan
    from infinitygan.model.config import TrainConfig
    from infinitygan.training import loop
    from infinitygan.training.state import load_state
    from infinitygan.training.step import train_step

    try:  # the patch sampler's home since evaluation and data left the training package
        from infinitygan.data.patches import PatchSampler
    except ImportError:  # a baseline revision from before that
        from infinitygan.training.data import PatchSampler

    cfg = TrainConfig(
        preset="small", data=data, batch=8, augment=AUGMENT, device="cpu", run_dir=""
    ).resolved()
    # train()'s process setup, where the tree has one
    getattr(loop, "keep_freed_memory", lambda: None)()
    placement = loop.Placement(0, 1, torch.device("cpu"))
    state = load_state(Path(state_path), cfg, placement.device)
    # start on a multiple of both intervals: the first warm-up iteration runs every phase
    state.step -= state.step % math.lcm(cfg.r1_every, cfg.path_every)
    sampler = PatchSampler(cfg.data, state.model.generator)
    if mode == "check-float64":
        sample = sampler.sample
        sampler.sample = lambda *a, **k: dataclasses.replace(  # type: ignore[method-assign]
            batch := sample(*a, **k), images=batch.images.double()
        )
    if mode != "time":
        for opt in (state.opt_g, state.opt_d):
            assert opt.defaults["betas"][0] == 0.0  # exp_avg is the last gradient
            for group in opt.param_groups:
                group["lr"] = 0.0
    g_step, d_net = loop.step_modules(state, placement)
    autocast = loop.mixed_precision(cfg, placement.device)

    def run(n: int) -> dict:
        t0 = time.perf_counter()
        stats: list[dict[str, float]] = []
        for _ in range(n):
            stats.append(train_step(state, sampler, g_step, d_net, placement.device, autocast))
        return {"seconds": time.perf_counter() - t0, "step": state.step, "stats": stats}

    run(warmup)
    print(json.dumps({"ready": infinitygan.__file__, "step": state.step}), flush=True)
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "run":
            print(json.dumps(run(int(arg))), flush=True)
        else:
            grads = {
                f"{net}.{i}": opt.state[p]["exp_avg"].contiguous()
                for net, opt in (("G", state.opt_g), ("D", state.opt_d))
                for i, p in enumerate(opt.param_groups[0]["params"])
            }
            save_file(grads, arg)
            print(json.dumps({"saved": arg}), flush=True)


def train_tree(
    name: str, root: Path, args: argparse.Namespace, warmup: int, mode: str = "time"
) -> TreeProcess:
    """One tree's child process."""
    n = str(args.threads)
    cmd = [sys.executable, __file__, "--child", n, str(args.state), str(args.data)]
    return TreeProcess(name, root, [*cmd, str(warmup), mode], args.threads)


# ---------------------------------------------------------------------------------------------
# plumbing


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="git revision to compare against (default: git merge-base HEAD main)",
    )
    p.add_argument(
        "--new",
        default=None,
        help="git revision to measure (default: this working tree, uncommitted changes included)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads in both children")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per tree (A B A B ...)")
    p.add_argument("--iters", type=int, default=16, help="timed iterations per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--state", type=Path, default=STATE, help="training state both resume")
    p.add_argument("--data", type=Path, default=DATA, help="training photos")
    p.add_argument("--pause-pid", type=int, default=None, help="SIGSTOP this pid meanwhile")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument(
        "--check",
        type=int,
        default=0,
        metavar="N",
        help="instead of timing: N iterations of both trees in float32 against the baseline in "
        "float64, weights frozen, losses and gradients compared",
    )
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        threads, state_path, data, warmup, mode = args.child
        child(int(threads), state_path, data, int(warmup), mode)
        return 0

    rev = args.baseline or git("merge-base", "HEAD", "main")
    base_desc, new_desc = describe(rev), describe(args.new)
    import torch

    print("# bench_train_step")
    print(
        f"# cpu: {cpu_name()} ({os.cpu_count()} cpus; {cpu_flags()}), torch {torch.__version__}, "
        f"{args.threads} threads, python {platform.python_version()}"
    )
    print(f"# old: {base_desc}")
    print(f"# new: {new_desc}")
    with exported(rev) as base_root, ExitStack() as stack:
        new_root = stack.enter_context(exported(args.new)) if args.new else ROOT
        if args.check:
            check(args, base_root, new_root)
            return 0
        rows = timing(args, base_root, new_root)
    if args.json:
        out = {"baseline": rev, "threads": args.threads, "rounds": rows}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def timing(args: argparse.Namespace, base_root: Path, new_root: Path) -> list[dict]:
    """The paired rounds (module docstring); prints the table and returns the rows."""
    print(
        f"# `small`, batch 8, augment {AUGMENT}, resumed from {args.state.name}; "
        f"{args.warmup} warm-up + {args.rounds} x {args.iters} timed iterations per tree"
    )
    print("# load average before (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rows: list[dict] = []
    with paused(args.pause_pid):
        trees = [
            train_tree("old", base_root, args, args.warmup),
            train_tree("new", new_root, args, args.warmup),
        ]
        try:
            for r in range(args.rounds):
                row: dict = {"round": r + 1}
                for tree in trees:
                    reply = tree.ask(f"run {args.iters}")
                    row[tree.name] = args.iters / reply["seconds"]
                    row[f"{tree.name}_step"] = reply["step"]
                if row["old_step"] != row["new_step"]:
                    raise RuntimeError(f"the trees drifted apart: {row}")
                row["ratio"] = row["new"] / row["old"]
                rows.append(row)
        finally:
            for tree in trees:
                tree.close()
    load = os.getloadavg()
    print(f"\n## it/s, {args.iters} iterations per round, {args.threads} thread(s)\n")
    print("| round | old it/s | new it/s | new/old |")
    print("|-------|----------|----------|---------|")
    for row in rows:
        print(
            f"| {row['round']:5d} | {row['old']:8.3f} | {row['new']:8.3f} | {row['ratio']:7.3f} |"
        )
    ratios = [row["ratio"] for row in rows]
    old = statistics.median(row["old"] for row in rows)
    new = statistics.median(row["new"] for row in rows)
    print(
        f"\nmedian: old {old:.3f} it/s ({1 / old:.2f} s/it), new {new:.3f} it/s "
        f"({1 / new:.2f} s/it)"
    )
    print(
        f"paired ratio new/old: median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}"
    )
    print("\n# load average after (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*load))
    print("# (other processes on this machine share its 2 cores: a load above ~2 inflates times)")
    return rows


def relative(a: float, ref: float) -> float:
    return abs(a - ref) / max(abs(ref), 1e-12)


def check(args: argparse.Namespace, base_root: Path, new_root: Path) -> None:
    """`--check N`: both trees in float32 and the baseline in float64 run the same N
    iterations from the shipped state with the weights frozen (see `child`); per iteration,
    how far each float32 run's losses and gradients are from the float64 reference.

    Frozen, because rounding differences compound once weights move: an update feeds the next
    phase, Adam divides by tiny second moments, and two float32 runs that differ only in
    rounding (old code on 1 and 2 threads) drift apart to ~1e-2 within four iterations."""
    import torch
    from safetensors.torch import load_file

    print(f"# --check {args.check}: float32 (old, new) against float64 (old), weights frozen")
    names = ("ref", "old", "new")
    trees = {
        "ref": train_tree("old float64", base_root, args, 0, "check-float64"),
        "old": train_tree("old", base_root, args, 0, "check"),
        "new": train_tree("new", new_root, args, 0, "check"),
    }
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.check):
                stats, grads = {}, {}
                for n in names:
                    reply = trees[n].ask("run 1")
                    stats[n] = reply["stats"][0]
                    path = Path(tmp) / f"{n}.safetensors"
                    trees[n].ask(f"grads {path}")
                    grads[n] = load_file(path)
                rows.append((reply["step"] - 1, stats, grads))
    finally:
        for tree in trees.values():
            tree.close()

    def grad_error(grads: dict, a: str, b: str, net: str) -> float:
        keys = [k for k in grads[b] if k.startswith(net + ".")]
        ga = torch.cat([grads[a][k].double().flatten() for k in keys])
        gb = torch.cat([grads[b][k].double().flatten() for k in keys])
        return float((ga - gb).norm() / gb.norm())

    print("\n## losses of the first iteration (all four phases)\n")
    print("| loss | float64 | old float32: rel. diff | new float32: rel. diff |")
    print("|------|---------|------------------------|------------------------|")
    first = rows[0][1]
    for k, ref in first["ref"].items():
        o, n = (relative(first[t][k], ref) for t in ("old", "new"))
        print(f"| {k} | {ref:.7g} | {o:.1e} | {n:.1e} |")
    print(
        "\n## per iteration: largest relative loss difference, and ||g - g_ref|| / ||g_ref|| "
        "of the gradient of each network's last phase (R1 / path length when due)\n"
    )
    print("| step | losses old | losses new | D grad old | D grad new | G grad old | G grad new |")
    print("|------|------------|------------|------------|------------|------------|------------|")
    for step, stats, grads in rows:
        cols = [max(relative(stats[t][k], v) for k, v in stats["ref"].items()) for t in names[1:]]
        for net in ("D", "G"):
            cols += [grad_error(grads, t, "ref", net) for t in names[1:]]
        print(f"| {step} | " + " | ".join(f"{c:.1e}" for c in cols) + " |")


if __name__ == "__main__":
    sys.exit(main())
