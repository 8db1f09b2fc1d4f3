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

Pass `--pause-pid PID` (the background trainer) to SIGSTOP it while measuring; it is resumed
on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "checkpoints" / "training" / "small-state.safetensors"
DATA = ROOT / "data" / "landscapes"
AUGMENT = "color,translation,cutout"  # the shipped run's policy (small-config.json)


# ---------------------------------------------------------------------------------------------
# the child: one tree's training loop, driven over stdin/stdout


def child(threads: int, state_path: str, data: str, warmup: int) -> None:
    """Resume `state_path` exactly as `train()` would (the loop's own helpers), then answer each
    line on stdin: "run N" with the seconds N more iterations took and the last one's losses,
    "save PATH" by writing the networks' weights there."""
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    import infinitygan
    from infinitygan.model.config import TrainConfig
    from infinitygan.training import loop
    from infinitygan.training.data import PatchSampler
    from infinitygan.training.state import load_state
    from infinitygan.training.step import train_step

    cfg = TrainConfig(
        preset="small", data=data, batch=8, augment=AUGMENT, device="cpu", run_dir=""
    ).resolved()
    placement = loop.Placement(0, 1, torch.device("cpu"))
    state = load_state(Path(state_path), cfg, placement.device)
    # start on a multiple of both intervals: the first warm-up iteration runs every phase
    state.step -= state.step % math.lcm(cfg.r1_every, cfg.path_every)
    sampler = PatchSampler(cfg.data, state.model.generator)
    g_step, d_net = loop.step_modules(state, placement)
    autocast = loop.mixed_precision(cfg, placement.device)

    def run(n: int) -> dict:
        t0 = time.perf_counter()
        stats: dict[str, float] = {}
        for _ in range(n):
            stats |= train_step(state, sampler, g_step, d_net, placement.device, autocast)
        return {"seconds": time.perf_counter() - t0, "step": state.step, "stats": stats}

    run(warmup)
    print(json.dumps({"ready": infinitygan.__file__, "step": state.step}), flush=True)
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "run":
            print(json.dumps(run(int(arg))), flush=True)
        else:
            tensors = {
                f"{name}.{k}": v.detach().contiguous()
                for name in ("G", "D", "G_ema")
                for k, v in getattr(state, name).state_dict().items()
            }
            save_file(tensors, arg)
            print(json.dumps({"saved": arg}), flush=True)


class Tree:
    """One tree's child process."""

    def __init__(self, name: str, root: Path, args: argparse.Namespace) -> None:
        self.name, self.root = name, root
        n = str(args.threads)
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
        cmd = [sys.executable, __file__, "--child", n, str(args.state), str(args.data)]
        self.proc = subprocess.Popen(
            [*cmd, str(args.warmup)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self._reply()
        imported = Path(self.ready["ready"]).resolve()
        if root.resolve() not in imported.parents:
            raise RuntimeError(f"{name}: imported {imported}, not the tree at {root}")

    def _reply(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: child exited with {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------------
# plumbing


@contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """SIGSTOP `pid` (if alive) for the duration; always SIGCONT it."""
    if pid is not None:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            pid = None
    if pid is None:
        yield
        return

    def resume_and_exit(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, resume_and_exit)
    os.kill(pid, signal.SIGSTOP)
    print(f"# paused pid {pid} for the measurements")
    try:
        yield
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        signal.signal(signal.SIGTERM, old)
        print(f"# resumed pid {pid}")


@contextmanager
def exported(rev: str) -> Iterator[Path]:
    """The tree of `rev` (git archive) in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def cpu_name() -> str:
    """lscpu's model name (falls back to /proc/cpuinfo)."""
    with suppress(OSError, subprocess.CalledProcessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    flags = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
    return ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags)


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
    p.add_argument("--threads", type=int, default=1, help="torch threads in both children")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per tree (A B A B ...)")
    p.add_argument("--iters", type=int, default=16, help="timed iterations per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--state", type=Path, default=STATE, help="training state both resume")
    p.add_argument("--data", type=Path, default=DATA, help="training photos")
    p.add_argument("--pause-pid", type=int, default=None, help="SIGSTOP this pid meanwhile")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        threads, state_path, data, warmup = args.child
        child(int(threads), state_path, data, int(warmup))
        return 0

    rev = args.baseline or git("merge-base", "HEAD", "main")
    base_desc = git("log", "-1", "--format=%h %s", rev)
    head_desc = git("log", "-1", "--format=%h %s", "HEAD")
    dirty = (
        " (+ uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    )
    import torch

    print("# bench_train_step")
    print(
        f"# cpu: {cpu_name()} ({os.cpu_count()} cpus; {cpu_flags()}), torch {torch.__version__}, "
        f"{args.threads} threads, python {platform.python_version()}"
    )
    print(f"# old: {base_desc}")
    print(f"# new: {head_desc}{dirty}")
    print(
        f"# `small`, batch 8, augment {AUGMENT}, resumed from {args.state.name}; "
        f"{args.warmup} warm-up + {args.rounds} x {args.iters} timed iterations per tree"
    )
    print("# load average before (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rows: list[dict] = []
    with exported(rev) as base_root, paused(args.pause_pid):
        trees = [Tree("old", base_root, args), Tree("new", ROOT, args)]
        try:
            for r in range(args.rounds):
                row: dict = {"round": r + 1}
                for tree in trees:
                    row[tree.name] = tree.ask(f"run {args.iters}")
                if row["old"]["step"] != row["new"]["step"]:
                    raise RuntimeError(f"the trees drifted apart: {row}")
                row["ratio"] = row["old"]["seconds"] / row["new"]["seconds"]
                rows.append(row)
            with tempfile.TemporaryDirectory() as tmp:
                weights = {t.name: Path(tmp) / f"{t.name}.safetensors" for t in trees}
                for tree in trees:
                    tree.ask(f"save {weights[tree.name]}")
                weight_diffs = compare_weights(weights["old"], weights["new"])
        finally:
            for tree in trees:
                tree.close()
    load = os.getloadavg()
    report(args, rows, weight_diffs)
    print("\n# load average after (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*load))
    print("# (other processes on this machine share its 2 cores: a load above ~2 inflates times)")
    if args.json:
        out = {"baseline": rev, "threads": args.threads, "rounds": rows, "weights": weight_diffs}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-12)


def compare_weights(old: Path, new: Path) -> dict[str, tuple[float, str]]:
    """Per network: the largest max|new - old| / max|old| over its tensors, and which tensor."""
    from safetensors.torch import load_file

    a, b = load_file(old), load_file(new)
    assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())
    worst: dict[str, tuple[float, str]] = {}
    for k, va in a.items():
        vb = b[k].to(va.dtype)
        rel = float((va - vb).abs().max() / va.abs().max().clamp_min(1e-12))
        net = k.split(".", 1)[0]
        if rel >= worst.get(net, (-1.0, ""))[0]:
            worst[net] = (rel, k)
    return worst


def report(args: argparse.Namespace, rows: list[dict], weights: dict) -> None:
    """The per-round table, the paired ratio and the agreement of the two trees' numbers."""
    print(f"\n## it/s, {args.iters} iterations per round, {args.threads} thread(s)\n")
    print("| round | old it/s | new it/s | new/old | losses: max rel. diff |")
    print("|-------|----------|----------|---------|-----------------------|")
    for row in rows:
        old, new = (args.iters / row[k]["seconds"] for k in ("old", "new"))
        stats_old, stats_new = row["old"]["stats"], row["new"]["stats"]
        diff = max(relative(stats_old[k], stats_new[k]) for k in stats_old)
        print(
            f"| {row['round']:5d} | {old:8.3f} | {new:8.3f} | {row['ratio']:7.3f} | {diff:21.1e} |"
        )
    ratios = [row["ratio"] for row in rows]
    old = statistics.median(args.iters / row["old"]["seconds"] for row in rows)
    new = statistics.median(args.iters / row["new"]["seconds"] for row in rows)
    print(
        f"\nmedian: old {old:.3f} it/s ({1 / old:.2f} s/it), new {new:.3f} it/s "
        f"({1 / new:.2f} s/it)"
    )
    print(
        f"paired ratio new/old: median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}"
    )
    last = rows[-1]
    print(f"\n## the same computation: after {last['old']['step']} iterations\n")
    print("| loss | old | new | rel. diff |")
    print("|------|-----|-----|-----------|")
    for k, v in last["old"]["stats"].items():
        w = last["new"]["stats"][k]
        print(f"| {k} | {v:.6g} | {w:.6g} | {relative(v, w):.1e} |")
    print("\nweights: max|new - old| / max|old|, worst tensor of each network")
    for net, (rel, name) in weights.items():
        print(f"- {net}: {rel:.1e} ({name})")


if __name__ == "__main__":
    sys.exit(main())
