"""Renderer benchmark: how close the canvas renderer gets to this machine's convolution peak.

Everything is measured side by side in one run (so the ratios compare like with like on a
shared, possibly throttled CPU):

1. conv peak: plain fp32 3x3 valid convs (channels_last and NCHW) at the channel/size pairs
   the `small` generator uses; the best is the "peak" the renderer is measured against;
2. the `small` generator's FLOPs per output pixel (FlopCounterMode on real renders) and the
   GFLOP/s the renderer achieves, against that peak (target >= 0.5);
3. pixels/s of one large forward pass vs the same area as independent 256-px tiles, as 16
   tiles batched in one call, and as 4x4 metatiles (target metatile >= 0.9 of single pass;
   seconds per tile inside a metatile <= 0.15);
4. peak RSS of a large `render_region` in chunks, in a fresh subprocess (ru_maxrss), vs the
   size of the output array;
5. seconds per megapixel of the `paper` config (random weights) (target <= 40 s/MP).

`--baseline REV` measures instead what a change gave: the conv peak, then one metatile render
of this working tree (or of revision `--new`) against the same render of revision REV
(revisions are exported with `git archive`), each tree in its own long-lived subprocess
(PYTHONPATH pointing at it), in alternating rounds A B A B ...: a process waits, idle, while
the other measures, so per-round ratios pair measurements taken moments apart on a shared CPU.
Each tree runs as the tile server would (its own `keep_render_memory` allocator setting where
it has one), and the two trees' pixels are compared.

The whole run, the parent included, uses the allocator setting the tile server uses
(`keep_render_memory`), so the conv peak and the renders see the same memory behaviour.

Weights are random (speed does not depend on them) unless --checkpoint is given. Pass
`--pause-pid-file PATH` (the training job's pid file) to SIGSTOP a background training job while
measuring; it is resumed on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from machine import cpu_flags, cpu_name, paused  # bench/, beside this script
from revisions import ROOT, TreeProcess, describe, exported
from torch.utils.flop_counter import FlopCounterMode

from infinitygan.model.canvas import Rect, render_batch, render_region
from infinitygan.model.checkpoint import load_generator
from infinitygan.model.config import PRESETS
from infinitygan.model.networks import Generator

TILE = 256
SEED = 1234
# (channels, output side): the shapes of the `small` generator's texture convs in a metatile
# pass, equal FLOPs each (19.3 GFLOP), plus its G_S width.
CONV_SIZES = ((512, 64), (256, 128), (128, 256), (64, 512), (32, 1024))


# ---------------------------------------------------------------------------------------------
# plumbing


def pid_in(pid_file: Path | None) -> int | None:
    """The pid written in `pid_file`, if there is one."""
    if pid_file is None or not pid_file.exists():
        return None
    try:
        return int(pid_file.read_text().strip())
    except ValueError:
        return None


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up (oneDNN builds kernels per shape on
    the first call; the minimum is the least disturbed by other processes)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def make_generator(preset: str, checkpoint: Path | None) -> Generator:
    if checkpoint is not None:
        return load_generator(checkpoint, device="cpu").generator
    torch.manual_seed(0)
    return Generator(PRESETS[preset].generator).eval().requires_grad_(False)


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n## {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")


# ---------------------------------------------------------------------------------------------
# measurements


def conv_peak(repeats: int) -> tuple[float, list[list[str]]]:
    rows, peak = [], 0.0
    for ch, side in CONV_SIZES:
        flops = 2 * ch * ch * 9 * side * side
        rates = []
        for fmt in (torch.channels_last, torch.contiguous_format):
            x = torch.randn(1, ch, side + 2, side + 2).contiguous(memory_format=fmt)
            w = torch.randn(ch, ch, 3, 3).contiguous(memory_format=fmt)
            with torch.inference_mode():
                t = timed(lambda x=x, w=w: F.conv2d(x, w), repeats)
            rates.append(flops / t / 1e9)
        peak = max(peak, rates[0])
        rows.append(
            [
                f"{ch}->{ch}",
                f"{side}x{side}",
                f"{flops / 1e9:.1f}",
                f"{rates[0]:.0f}",
                f"{rates[1]:.0f}",
            ]
        )
    return peak, rows


def tiles_of(x0: int, y0: int, side: int) -> list[Rect]:
    n = side // TILE
    return [Rect(x0 + TILE * i, y0 + TILE * j, TILE, TILE) for j in range(n) for i in range(n)]


def throughput(g: Generator, large: int, meta: int, repeats: int, peak: float) -> dict:
    """The same large x large area four ways; returns the numbers and the printed rows."""
    x0, y0 = -large // 2, -large // 2  # around the horizon, negative and positive tiles
    area = large * large
    meta_px = meta * TILE
    steps = range(0, large, meta_px)
    metas = [Rect(x0 + mx, y0 + my, meta_px, meta_px) for my in steps for mx in steps]
    tiles = tiles_of(x0, y0, large)
    ways: dict[str, Callable[[], object]] = {
        f"single pass {large}x{large}": lambda: render_batch(
            g, [(SEED, Rect(x0, y0, large, large))]
        ),
        f"metatiles {meta}x{meta} ({len(metas)} x {meta_px} px)": lambda: [
            render_batch(g, [(SEED, r)]) for r in metas
        ],
        f"tiles batched per metatile ({len(metas)} calls x {meta * meta})": lambda: [
            render_batch(g, [(SEED, t) for t in tiles_of(r.x, r.y, meta_px)]) for r in metas
        ],
        f"independent tiles ({len(tiles)} calls x 1)": lambda: [
            render_batch(g, [(SEED, t)]) for t in tiles
        ],
    }
    # FLOPs of each way: count one unit and multiply (all units of a way have one window shape)
    flops = {
        "single": count_flops(lambda: render_batch(g, [(SEED, Rect(x0, y0, large, large))])),
        "meta": len(metas) * count_flops(lambda: render_batch(g, [(SEED, metas[0])])),
        "tile": len(tiles) * count_flops(lambda: render_batch(g, [(SEED, tiles[0])])),
    }
    flops["batched"] = flops["tile"]
    keys = ["single", "meta", "batched", "tile"]
    rows, out = [], {}
    single_rate = None
    for key, (name, fn) in zip(keys, ways.items(), strict=True):
        t = timed(fn, repeats)
        rate = area / t
        single_rate = single_rate or rate
        gflops = flops[key] / t / 1e9
        out[key] = {"seconds": t, "px_per_s": rate, "flops": flops[key], "gflop_s": gflops}
        rows.append(
            [
                name,
                f"{t:.2f}",
                f"{rate / 1e6:.3f}",
                f"{rate / single_rate:.3f}",
                f"{flops[key] / area / 1e3:.1f}",
                f"{gflops:.0f}",
                f"{gflops / peak:.2f}",
            ]
        )
    out["rows"] = rows
    out["tile_in_meta_s"] = out["meta"]["seconds"] / (len(metas) * meta * meta)
    out["tile_alone_s"] = out["tile"]["seconds"] / len(tiles)
    return out


def render_memory_setting() -> None:
    """The tile server's allocator setting, as the imported tree has it (revisions older than
    `infinitygan.malloc_tuning` have none)."""
    try:
        from infinitygan.malloc_tuning import keep_render_memory
    except ImportError:
        return
    keep_render_memory()


def memory_child(preset: str, checkpoint: str, width: int, height: int, chunk: int) -> None:
    """Runs in a fresh interpreter: baseline RSS after loading, then the render's high-water."""
    render_memory_setting()
    g = make_generator(preset, Path(checkpoint) if checkpoint else None)
    render_region(g, SEED, Rect(0, 0, 64, 64), max_chunk=chunk)  # import / allocator warm-up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    img = render_region(g, SEED, Rect(-width // 2, -height // 2, width, height), max_chunk=chunk)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "out_bytes": img.nbytes}))


def memory(preset: str, checkpoint: Path | None, width: int, height: int, chunk: int) -> dict:
    child = [preset, str(checkpoint or ""), str(width), str(height), str(chunk)]
    cmd = [sys.executable, __file__, "--memory-child", *child]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def paper(size: int, chunk: int) -> dict:
    g = make_generator("paper", None)
    rect = Rect(-size // 2, -size // 2, size, size)
    probe = Rect(rect.x, rect.y, min(chunk, size), min(chunk, size))
    n_chunks = (-(-size // chunk)) ** 2
    aligned = size % chunk == 0 and rect.x % g.cfg.pixels_per_cell == 0
    render_region(g, SEED, Rect(0, 0, 64, 64))  # warm-up, small
    t0 = time.perf_counter()
    render_region(g, SEED, rect, max_chunk=chunk)
    seconds = time.perf_counter() - t0
    # every chunk has the probe's window shape when the region is chunk- and cell-aligned
    flops = n_chunks * count_flops(lambda: render_batch(g, [(SEED, probe)])) if aligned else 0
    return {"seconds": seconds, "s_per_mp": seconds / (size * size / 1e6), "flops": flops}


def metatile_rect(meta: int) -> Rect:
    """The metatile the profile and the baseline comparison render, around the horizon."""
    return Rect(-meta * TILE // 2, -meta * TILE // 2, meta * TILE, meta * TILE)


def render_child(preset: str, checkpoint: str, meta: int) -> None:
    """One tree's metatile render, driven over stdin/stdout (`--baseline`): "run N" answers the
    best wall and CPU seconds of N renders and their minor page faults, "pixels PATH" saves the
    render's uint8 pixels there. Imports whichever tree PYTHONPATH names."""
    import infinitygan

    render_memory_setting()  # the tree's server setting, if any
    g = make_generator(preset, Path(checkpoint) if checkpoint else None)
    rect = metatile_rect(meta)
    render_batch(g, [(SEED, rect)])  # oneDNN builds its kernels
    flops = count_flops(lambda: render_batch(g, [(SEED, rect)]))
    print(json.dumps({"ready": infinitygan.__file__, "flops": flops}), flush=True)
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "run":
            wall, cpu, faults = [], [], []
            for _ in range(int(arg)):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0, c0 = time.perf_counter(), time.process_time()
                render_batch(g, [(SEED, rect)])
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            print(json.dumps({"wall": min(wall), "cpu": min(cpu), "faults": min(faults)}))
        else:
            np.save(arg, render_batch(g, [(SEED, rect)])[0])
            print(json.dumps({"saved": arg}))
        sys.stdout.flush()


def render_tree(name: str, root: Path, args: argparse.Namespace) -> TreeProcess:
    """One tree's `render_child` process."""
    cmd = [sys.executable, __file__, "--render-child", "small"]
    cmd += [str(args.checkpoint or ""), str(args.meta)]
    return TreeProcess(name, root, cmd, torch.get_num_threads())


def compare(args: argparse.Namespace, peak: float) -> dict:
    """`--baseline`: the paired rounds of one metatile render, old tree vs this one, then their
    pixels; prints the tables and returns the numbers."""
    rows: list[dict] = []
    with ExitStack() as stack:
        base_root = stack.enter_context(exported(args.baseline))
        new_root = stack.enter_context(exported(args.new)) if args.new else ROOT
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        trees = [render_tree("old", base_root, args), render_tree("new", new_root, args)]
        try:
            for r in range(args.rounds):
                row: dict = {"round": r + 1}
                for tree in trees:
                    row[tree.name] = tree.ask(f"run {args.repeats}")
                rows.append(row)
            pixels = []
            for tree in trees:
                tree.ask(f"pixels {tmp / tree.name}.npy")
                pixels.append(np.load(tmp / f"{tree.name}.npy").astype(np.int16))
        finally:
            for tree in trees:
                tree.close()
    flops = {tree.name: tree.ready["flops"] for tree in trees}
    side = args.meta * TILE
    print(f"\n# old: {describe(args.baseline)}\n# new: {describe(args.new)}")
    table(
        f"metatile {side}x{side} of `small`, old vs new, best of {args.repeats} per round",
        ["round", "old s", "new s", "new/old wall", "old CPU s", "new CPU s", "new/old CPU"],
        [
            [
                str(row["round"]),
                f"{row['old']['wall']:.3f}",
                f"{row['new']['wall']:.3f}",
                f"{row['new']['wall'] / row['old']['wall']:.3f}",
                f"{row['old']['cpu']:.3f}",
                f"{row['new']['cpu']:.3f}",
                f"{row['new']['cpu'] / row['old']['cpu']:.3f}",
            ]
            for row in rows
        ],
    )
    out: dict = {"baseline": args.baseline, "flops": flops, "rounds": rows}
    summary = []
    for name in ("old", "new"):
        best = min(row[name]["wall"] for row in rows)
        faults = statistics.median(row[name]["faults"] for row in rows)
        # against the old tree's FLOPs: the work the model needs, whatever a tree computes
        rate = flops["old"] / best / 1e9
        out[name] = {"best_wall": best, "gflop_s": rate, "of_peak": rate / peak}
        summary.append(
            [
                name,
                f"{best:.3f}",
                f"{flops[name] / side**2 / 1e3:.1f}",
                f"{rate:.0f}",
                f"{rate / peak:.3f}",
                f"{faults:.0f}",
            ]
        )
    table(
        "best of all rounds (GFLOP/s at the old tree's FLOPs, against the same-run conv peak)",
        ["tree", "best s", "kFLOP/px", "GFLOP/s", "of peak", "minor faults/render"],
        summary,
    )
    ratios = [row["new"]["wall"] / row["old"]["wall"] for row in rows]
    diff = np.abs(pixels[0] - pixels[1])
    out["pixels"] = {"max_diff": int(diff.max()), "changed": float((diff > 0).mean())}
    print(
        f"\npaired wall ratio new/old: median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}"
    )
    print(
        f"pixels new vs old: max |diff| {out['pixels']['max_diff']} (uint8 levels), "
        f"{100 * out['pixels']['changed']:.4f}% of values differ"
    )
    return out


def profile_metatile(g: Generator, meta: int, top: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    rect = metatile_rect(meta)
    render_batch(g, [(SEED, rect)])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        render_batch(g, [(SEED, rect)])
    print(f"\n## torch.profiler: one {meta * TILE} px metatile of `small`\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a `small` checkpoint (default: random weights)",
    )
    p.add_argument("--large", type=int, default=2048, help="side of the single-pass area (px)")
    p.add_argument("--meta", type=int, default=4, help="metatile side in tiles")
    p.add_argument("--mem-width", type=int, default=8192)
    p.add_argument("--mem-height", type=int, default=2048)
    p.add_argument(
        "--mem-chunk", type=int, default=1024, help="render_region chunk for the memory run"
    )
    p.add_argument("--paper-size", type=int, default=1024, help="0 skips the paper run")
    p.add_argument("--paper-chunk", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    p.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the top N ops of a metatile"
    )
    p.add_argument("--pause-pid-file", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="REV",
        help="instead: conv peak, then a metatile render of this tree vs git revision REV",
    )
    p.add_argument(
        "--new",
        default=None,
        metavar="REV",
        help="--baseline: measure revision REV instead of this working tree",
    )
    p.add_argument("--rounds", type=int, default=3, help="--baseline: rounds per tree (A B A B)")
    p.add_argument("--memory-child", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--render-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        preset, ckpt, w, h, c = args.memory_child
        memory_child(preset, ckpt, int(w), int(h), int(c))
        return 0
    if args.render_child:
        preset, ckpt, meta = args.render_child
        render_child(preset, ckpt, int(meta))
        return 0
    if args.large % (args.meta * TILE):
        p.error("--large must be a multiple of --meta * 256")

    print("# bench_render")
    print(
        f"# cpu: {cpu_name()} ({os.cpu_count()} cpus; {cpu_flags()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, python {platform.python_version()}"
    )
    print("# load average before (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    render_memory_setting()  # as the tile server runs
    if args.baseline:
        with paused(pid_in(args.pause_pid_file)):
            peak, conv_rows = conv_peak(args.repeats + 1)
            table(
                "conv peak: fp32 3x3 valid conv, batch 1",
                ["conv", "output", "GFLOP", "GFLOP/s channels_last", "GFLOP/s NCHW"],
                conv_rows,
            )
            print(f"\npeak (best channels_last): {peak:.0f} GFLOP/s")
            results = {"conv_peak_gflop_s": peak, "compare": compare(args, peak)}
        print(
            "\n# load average after (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        return 0
    results: dict = {}
    with paused(pid_in(args.pause_pid_file)):
        # first, while this process is small: the child's numbers are its own either way
        mem = memory("small", args.checkpoint, args.mem_width, args.mem_height, args.mem_chunk)
        results["memory"] = mem
        peak, conv_rows = conv_peak(args.repeats + 1)
        results["conv_peak_gflop_s"] = peak
        g = make_generator("small", args.checkpoint)
        thr = throughput(g, args.large, args.meta, args.repeats, peak)
        results["small"] = {k: v for k, v in thr.items() if k != "rows"}
        if args.paper_size:
            results["paper"] = paper(args.paper_size, args.paper_chunk)
        if args.profile:
            profile_metatile(g, args.meta, args.profile)
    load = os.getloadavg()
    report(args, results, conv_rows, thr["rows"])
    print("\n# load average after (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*load))
    print("# (other processes on this machine share its 2 cores: a load above ~2 inflates times)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def report(args: argparse.Namespace, results: dict, conv_rows: list, thr_rows: list) -> None:
    """Print every table and the target checks (after the measurements, all together)."""
    peak = results["conv_peak_gflop_s"]
    table(
        "conv peak: fp32 3x3 valid conv, batch 1",
        ["conv", "output", "GFLOP", "GFLOP/s channels_last", "GFLOP/s NCHW"],
        conv_rows,
    )
    print(f"\npeak (best channels_last): {peak:.0f} GFLOP/s")
    small = results["small"]
    table(
        f"`small` generator, the same {args.large}x{args.large} area four ways",
        ["way", "s", "Mpx/s", "vs single", "kFLOP/px", "GFLOP/s", "of peak"],
        thr_rows,
    )
    print(
        f"\nseconds per 256 tile inside a {args.meta}x{args.meta} metatile: "
        f"{small['tile_in_meta_s']:.3f} (rendered alone: {small['tile_alone_s']:.3f})"
    )
    mem = results["memory"]
    mp = args.mem_width * args.mem_height / 1e6
    table(
        f"memory: render_region {args.mem_width}x{args.mem_height} of `small`, "
        f"chunk {args.mem_chunk}, fresh process",
        ["output array MB", "RSS after load MB", "peak RSS MB", "peak - load MB", "s", "Mpx/s"],
        [
            [
                f"{mem['out_bytes'] / 2**20:.0f}",
                f"{mem['base'] / 2**20:.0f}",
                f"{mem['peak'] / 2**20:.0f}",
                f"{(mem['peak'] - mem['base']) / 2**20:.0f}",
                f"{mem['seconds']:.1f}",
                f"{mp / mem['seconds']:.2f}",
            ]
        ],
    )
    meta_vs_single = small["meta"]["px_per_s"] / small["single"]["px_per_s"]
    checks = [
        ("renderer GFLOP/s >= 0.5 x conv peak (metatile)", small["meta"]["gflop_s"] / peak, 0.5),
        ("metatile px/s >= 0.9 x single pass", meta_vs_single, 0.9),
        ("s per 256 tile inside a metatile <= 0.15", -small["tile_in_meta_s"], -0.15),
    ]
    if "paper" in results:
        pp = results["paper"]
        mp = args.paper_size**2 / 1e6
        gf = pp["flops"] / pp["seconds"] / 1e9 if pp["flops"] else float("nan")
        table(
            f"`paper` config (random weights): render_region {args.paper_size}x{args.paper_size}, "
            f"chunk {args.paper_chunk}",
            ["s", "s/MP", "TFLOP/MP", "GFLOP/s", "of peak"],
            [
                [
                    f"{pp['seconds']:.1f}",
                    f"{pp['s_per_mp']:.1f}",
                    f"{pp['flops'] / mp / 1e12:.2f}",
                    f"{gf:.0f}",
                    f"{gf / peak:.2f}",
                ]
            ],
        )
        checks.append(("paper s/MP <= 40", -pp["s_per_mp"], -40.0))
    print("\n## targets\n")
    for name, value, target in checks:  # "<=" checks are negated into ">="
        print(f"- {name}: {abs(value):.3f} -> {'met' if value >= target else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
