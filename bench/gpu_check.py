"""GPU check: what a few minutes on a lent CUDA machine should tell us, as one markdown table.

1. Seamlessness on the device: `tests/model/test_canvas.py` with INFINITYGAN_TEST_DEVICE set, so
   tiles rendered separately equal one pass where the renderer takes the batched kernels.
2. Device vs CPU pixels of a checkpoint (the shipped one by default) on regions at the horizon,
   at the canvas's first tile column and 1024 tiles before its last: several regions per call
   (the server's batched path), one per call (the fused path), and batched with TF32 off (PyTorch
   lets cuDNN convolutions use TF32 by default; this row says how much of a difference is its).
3. Render throughput at 1/4/16 metatiles per call, fp32 vs bf16: the renderer has no bf16
   option, so `torch.autocast(bfloat16)` is put around it here, and its pixels are compared with
   fp32's. Warm-up calls first; the device is synchronised around every timing.
4. Biomes: metatiles in a transition of the default world (the spatial kernels, batched) on the
   device, their pixels against the CPU's and their rate against the same metatiles with
   biomes off (on a 2-core CPU a transition costs ~1.2x; on a GPU the extra per-column passes
   are memory-bound, so this row says what they cost there).
5. `infinitygan serve` on the device (bench_overload.Served: a free port, ready when /readyz
   says so), warmed, then cold tiles (fresh seeds: render-bound, every tile of each metatile at
   once, as bench_server's cold phase) and cached tiles (wrk, else a bounded Python load).

Run it through `bench/gpu_check.sh` (picks the interpreter, bounds the time, kills what is left).
Without CUDA it prints one "skipped" line and exits 0. `--device cpu --quick` runs every part on
the CPU with tiny sizes, so the script is checked end to end before a GPU is ever lent.

Exit status: 0 if every check passed, 1 if one failed (a test, a device-vs-CPU difference above
1 level, a part that raised or could not run), 2 if torch or the renderer cannot be imported.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.monotonic()
SKIP_LINE = "skipped: no CUDA device (torch.cuda.is_available() is False)"
TILE = 256
# Top-left tile (x, y) of each compared region: the horizon at x = 0, the canvas's first tile
# column, and 1024 tiles before its last (tile coordinates span -2**31 .. 2**31 - 1).
REGIONS = ((0, -2), (-(2**31), -2), (2**31 - 1024, -2))
# Modules each part imports (PIL: the test suite's conftest and the server's encoders).
NEEDS = {
    "render": ("numpy", "safetensors", "tqdm"),
    "tests": ("pytest", "PIL"),
    "server": (
        "fastapi",
        "uvicorn",
        "uvloop",
        "httptools",
        "pydantic_settings",
        "redis",
        "prometheus_client",
        "httpx",
        "PIL",
    ),
}


@dataclass(frozen=True)
class Sizes:
    """How much each part does: the full check (minutes on a GPU) or --quick (a CPU dry run)."""

    region_px: int  # side of each device-vs-CPU region
    metatile_px: int  # side of one metatile in the throughput part
    batches: tuple[int, ...]  # metatiles per renderer call
    warmup_calls: int  # untimed calls before each throughput point
    min_timed_s: float  # each throughput point runs at least this long ...
    min_calls: int  # ... and at least this many timed calls
    server_metatile: int  # INFINITYGAN_METATILE
    server_batch: int  # INFINITYGAN_BATCH_MAX
    cold_metatiles: int  # fresh metatiles requested in the cold measurement
    wrk_s: int  # cached tiles: wrk duration ...
    wrk_connections: int
    python_requests: int  # ... or the Python load's request count


FULL = Sizes(
    region_px=4 * TILE,
    metatile_px=4 * TILE,
    batches=(1, 4, 16),
    warmup_calls=2,
    min_timed_s=2.0,
    min_calls=3,
    server_metatile=4,  # the server's defaults
    server_batch=4,
    cold_metatiles=48,
    wrk_s=8,
    wrk_connections=64,
    python_requests=4000,
)
QUICK = Sizes(
    region_px=64,
    metatile_px=64,
    batches=(1, 2),  # one window per call and several: the renderer's two paths
    warmup_calls=1,
    min_timed_s=0.0,
    min_calls=1,
    server_metatile=1,
    server_batch=2,
    cold_metatiles=4,
    wrk_s=2,
    wrk_connections=8,
    python_requests=200,
)


class Table:
    """The rows of the one table printed at the end, and whether every check passed."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.ok = True

    def add(self, measure: str, value: str, ok: bool = True) -> None:
        self.rows.append((measure, value))
        self.ok = self.ok and ok

    def markdown(self) -> str:
        width = max(len(m) for m, _ in self.rows)
        lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {m.ljust(width)} | {v} |" for m, v in self.rows]
        return "\n".join(lines)


def log(text: str) -> None:
    """Progress on stderr (stdout carries only the table and a failed test run's output), with
    the seconds since the start: where a lent GPU's minutes went."""
    print(f"# {time.monotonic() - STARTED:5.1f}s {text}", file=sys.stderr, flush=True)


def missing_modules(part: str) -> list[str]:
    """What `part` would fail to import: said up front, since the GPU machine's python is not
    the one ./manage sets up."""
    return [m for m in NEEDS[part] if importlib.util.find_spec(m) is None]


def sync(device: Any) -> None:
    """Wait for the device's queued kernels: timings must include them."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tf32_switches() -> list[tuple[str, Any, str, object]]:
    """(name, object, attribute, IEEE value) of PyTorch's TF32 switches for convolutions and
    matmuls: the fp32_precision settings where this torch has them (2.9+), allow_tf32 before."""
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if hasattr(getattr(cudnn, "conv", None), "fp32_precision"):
        return [
            ("cudnn.conv.fp32_precision", cudnn.conv, "fp32_precision", "ieee"),
            ("cuda.matmul.fp32_precision", matmul, "fp32_precision", "ieee"),
        ]
    return [
        ("cudnn.allow_tf32", cudnn, "allow_tf32", False),
        ("cuda.matmul.allow_tf32", matmul, "allow_tf32", False),
    ]


def tf32_state() -> str:
    return ", ".join(f"{name}={getattr(obj, attr)}" for name, obj, attr, _ in tf32_switches())


@contextmanager
def tf32_off() -> Iterator[None]:
    """IEEE fp32 convolutions and matmuls for the block, the previous settings restored."""
    switches = tf32_switches()
    saved = [getattr(obj, attr) for _, obj, attr, _ in switches]
    for _, obj, attr, ieee in switches:
        setattr(obj, attr, ieee)
    try:
        yield
    finally:
        for (_, obj, attr, _), value in zip(switches, saved, strict=True):
            setattr(obj, attr, value)


def bf16(device: Any, on: bool) -> Any:
    """bf16 autocast on `device` (the renderer has no precision option of its own), or none."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16) if on else nullcontext()


def diff(a: Any, b: Any) -> tuple[int, float]:
    """Max and mean absolute difference of two uint8 arrays, in levels."""
    import numpy as np

    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float(d.mean())


# ---------------------------------------------------------------------------------- the parts


def seamlessness(device: Any, table: Table) -> None:
    """tests/model/test_canvas.py on `device`, in its own pytest process."""
    missing = missing_modules("tests")
    if missing:
        table.add("seamlessness tests", f"not run: missing {', '.join(missing)}", ok=False)
        return
    log(f"seamlessness: pytest tests/model/test_canvas.py on {device}")
    env = {**os.environ, "INFINITYGAN_TEST_DEVICE": str(device), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*cmd, "tests/model/test_canvas.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else f"no output (exit {proc.returncode})"
    if proc.returncode != 0:
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
    verdict = "PASS" if proc.returncode == 0 else "FAIL"
    table.add(
        f"seamlessness: test_canvas.py on {device}", f"{verdict}: {summary}", ok=not proc.returncode
    )


def pixels(checkpoint: Path, device: Any, sizes: Sizes, table: Table) -> None:
    """The device's pixels vs the CPU's for the same regions, three ways on the device."""
    from infinitygan.model.canvas import Rect, render_batch
    from infinitygan.model.checkpoint import load_generator

    side = sizes.region_px
    jobs = [(7, Rect(TILE * x, TILE * y, side, side)) for x, y in REGIONS]
    log(f"pixels: {len(jobs)} regions of {side} px on cpu, then on {device}")
    reference = render_batch(load_generator(checkpoint, "cpu").generator, jobs)
    gen = load_generator(checkpoint, device).generator
    together = render_batch(gen, jobs)
    alone = [render_batch(gen, [job])[0] for job in jobs]
    with tf32_off():
        ieee = render_batch(gen, jobs)
    for k, ((x, y), ref) in enumerate(zip(REGIONS, reference, strict=True)):
        ways = {
            f"{len(jobs)} per call": diff(together[k], ref),
            "1 per call": diff(alone[k], ref),
            f"{len(jobs)} per call, TF32 off": diff(ieee[k], ref),
        }
        worst = max(m for m, _ in ways.values())
        value = "; ".join(f"{w}: max {m}, mean {a:.4f}" for w, (m, a) in ways.items())
        table.add(
            f"{device} vs cpu pixels, tile ({x}, {y}) {side} px",
            f"{value}{'' if worst <= 1 else ' (> 1 level)'}",
            ok=worst <= 1,
        )


def timed_render(
    render: Callable[[], Any], device: Any, sizes: Sizes
) -> tuple[float, float | None, Any]:
    """Calls per second of `render` after warm-up calls (kernel selection, allocator growth),
    the device synchronised around the timing; the CUDA memory peak in GiB (None on the CPU);
    the last call's pixels."""
    import torch

    for _ in range(sizes.warmup_calls):
        render()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start, calls = time.perf_counter(), 0
    while calls < sizes.min_calls or time.perf_counter() - start < sizes.min_timed_s:
        out = render()
        calls += 1
    sync(device)
    rate = calls / (time.perf_counter() - start)
    cuda = device.type == "cuda"
    return rate, torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None, out


def throughput(checkpoint: Path, device: Any, sizes: Sizes, table: Table) -> dict[int, float]:
    """Metatiles per second of CanvasRenderer at each batch, fp32 and bf16; fp32 tiles/s. First
    the time to hash one metatile's inputs, which every render call spends on the CPU before
    the device starts (a bound on the device's rate that no batch size lifts)."""
    from infinitygan.model import canvas
    from infinitygan.model.canvas import CanvasRenderer, Rect
    from infinitygan.model.checkpoint import load_generator

    renderer = CanvasRenderer(load_generator(checkpoint, device).generator)
    side = sizes.metatile_px
    cfg = renderer.generator.cfg
    window = canvas._window(cfg, Rect(0, -side // 2, side, side))
    start = time.perf_counter()
    for k in range(sizes.min_calls):
        canvas.window_inputs(cfg, 100 + k, window)
    hashing = (time.perf_counter() - start) / sizes.min_calls
    table.add(f"hashed inputs of one {side} px metatile (CPU)", f"{1000 * hashing:.1f} ms")
    tiles_per_s: dict[int, float] = {}
    for batch in sizes.batches:
        jobs = [(11, Rect(side * i, -side // 2, side, side)) for i in range(batch)]
        runs = {}
        for half in (False, True):
            log(f"throughput: batch {batch}, {'bf16' if half else 'fp32'}")

            def render(half: bool = half, jobs: list = jobs) -> Any:
                with bf16(device, half):
                    return renderer(jobs)

            calls_per_s, peak, out = timed_render(render, device, sizes)
            memory = "" if peak is None else f", peak {peak:.2f} GiB"
            runs[half] = (calls_per_s * batch, memory, out)
        (fp32, fp32_memory, fp32_out), (low, low_memory, low_out) = runs[False], runs[True]
        tiles_per_s[batch] = fp32 * side * side / TILE**2
        most, mean = diff(low_out, fp32_out)
        table.add(
            f"render {batch} x {side} px metatiles per call",
            f"fp32 {fp32:.3g} metatiles/s ({fp32 * side * side / 1e6:.3g} Mpx/s{fp32_memory}); "
            f"bf16 {low:.3g} metatiles/s (x{low / fp32:.2f}{low_memory}), "
            f"bf16 vs fp32 pixels max {most}, mean {mean:.3f}",
        )
    return tiles_per_s


def biomes(checkpoint: Path, device: Any, sizes: Sizes, table: Table) -> None:
    """Transition metatiles of the default world on the device: pixels vs the CPU's, and
    metatiles/s against the same metatiles with biomes off, at the largest batch."""
    from infinitygan.model import canvas
    from infinitygan.model.canvas import CanvasRenderer, Rect
    from infinitygan.model.checkpoint import load_generator
    from infinitygan.model.world import DEFAULT_WORLD

    gen = load_generator(checkpoint, device).generator
    side, batch, seed = sizes.metatile_px, sizes.batches[-1], 11
    row = [
        Rect(side * i, -side // 2, side, side) for i in range(4 * DEFAULT_WORLD.biome_px // side)
    ]
    across = [r for r in row if canvas.anchors_reaching(gen.cfg, DEFAULT_WORLD, seed, r) > 1]
    jobs = [(seed, r) for r in across[:batch]]
    log(f"biomes: {len(jobs)} transition metatiles of {side} px on {device}, then on cpu")
    world_rate, _, out = timed_render(
        lambda: CanvasRenderer(gen, DEFAULT_WORLD)(jobs), device, sizes
    )
    off_rate, _, _ = timed_render(lambda: CanvasRenderer(gen)(jobs), device, sizes)
    reference = CanvasRenderer(load_generator(checkpoint, "cpu").generator, DEFAULT_WORLD)(jobs)
    most, mean = diff(out, reference)
    table.add(
        f"biomes: {len(jobs)} transition metatiles of {side} px per call ({DEFAULT_WORLD.tag})",
        f"{world_rate * len(jobs):.3g} metatiles/s, x{off_rate / world_rate:.2f} the time of "
        f"biomes off; vs cpu pixels max {most}, mean {mean:.4f}"
        f"{'' if most <= 1 else ' (> 1 level)'}",
        ok=most <= 1,
    )


async def python_load(url: str, paths: Sequence[str], requests: int, connections: int) -> dict:
    """`requests` GETs spread over `paths` by `connections` concurrent workers (the fallback
    when wrk is missing): requests/s, median and p99 latency, answers other than 200."""
    import httpx

    latencies: list[float] = []
    failed = 0
    todo = iter(range(requests))
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal failed
            for i in todo:
                t = time.perf_counter()
                response = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - t)
                failed += response.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "non2xx": failed,
    }


def server(
    checkpoint: Path,
    device: Any,
    sizes: Sizes,
    load: str,
    raw_tiles_per_s: dict[int, float],
    table: Table,
) -> None:
    """`infinitygan serve` on the device: cold tiles (render-bound), then cached ones."""
    missing = missing_modules("server")
    if missing:
        table.add("server", f"not run: missing {', '.join(missing)}", ok=False)
        return
    # bench/ beside this script: the server starter and load generators the benchmarks use
    from bench_overload import Served
    from bench_server import cold_rate, wrk

    m, batch = sizes.server_metatile, sizes.server_batch
    env = {
        "INFINITYGAN_DEVICE": str(device),
        "INFINITYGAN_CHECKPOINT": str(checkpoint),
        "INFINITYGAN_METATILE": str(m),
        "INFINITYGAN_BATCH_MAX": str(batch),
        "INFINITYGAN_RENDER_TIMEOUT_S": "300",
        "INFINITYGAN_TILE_FORMAT": "webp",
        "INFINITYGAN_BIOME_PX": "0",  # one style, as the raw render it is compared with
    }
    log(f"server: infinitygan serve on {device} (metatile {m}, batch {batch})")
    served = Served(ROOT, env)
    try:
        in_flight = 2 * batch  # metatiles in flight: the render worker can fill its batch
        log("server: warm-up with cold metatiles")
        asyncio.run(cold_rate(served.url, m, in_flight, in_flight, 9_000_000, "webp"))
        before = served.metric("infinitygan_rendered_metatiles_total")
        log(f"server: {sizes.cold_metatiles} cold metatiles")
        cold = asyncio.run(
            cold_rate(served.url, m, sizes.cold_metatiles, in_flight, 9_100_000, "webp")
        )
        rendered = served.metric("infinitygan_rendered_metatiles_total") - before
        raw = raw_tiles_per_s.get(batch) if sizes.metatile_px == m * TILE else None
        versus = f", {cold / raw:.2f} of the raw render at batch {batch}" if raw else ""
        table.add(
            f"server cold tiles (fresh seeds, {in_flight} metatiles of {m}x{m} in flight)",
            f"{cold:.1f} tiles/s ({rendered:.0f} metatiles rendered for "
            f"{sizes.cold_metatiles}){versus}",
            ok=rendered == sizes.cold_metatiles,
        )
        warm = [f"/tiles/{9_000_000 + k}/8/0/0.webp" for k in range(in_flight)]
        if load == "wrk":
            log(f"server: cached tiles, wrk -c{sizes.wrk_connections} {sizes.wrk_s}s")
            r = wrk(served.url + warm[0], sizes.wrk_s, sizes.wrk_connections, served.proc.pid)
            how = f"wrk -t2 -c{sizes.wrk_connections} -d{sizes.wrk_s}s, one tile"
            r["server CPU us/request"] = r.pop("cpu_us_per_request")
        else:
            log(f"server: cached tiles, {sizes.python_requests} Python requests")
            r = asyncio.run(
                python_load(served.url, warm, sizes.python_requests, sizes.wrk_connections)
            )
            how = f"Python httpx, {sizes.python_requests} requests x {sizes.wrk_connections}"
        table.add(
            f"server cached tiles ({how})",
            f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"non-200 {r['non2xx']:.0f}"
            + "".join(f", {k} {v:.0f}" for k, v in r.items() if k.startswith("server")),
            ok=r["non2xx"] == 0,
        )
    finally:
        served.stop()


# ---------------------------------------------------------------------------------- driver


def describe(device: Any, checkpoint: Path, table: Table) -> None:
    """The rows every reading depends on: the card, torch/CUDA/cuDNN and the TF32 settings the
    server runs with, the host CPU (the inputs are hashed there) and the checkpoint."""
    import torch
    from machine import cpu_name

    from infinitygan.model.checkpoint import content_version

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        table.add("device", f"{name} ({device}, {memory:.0f} GiB)")
        table.add(
            "torch",
            f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}; {tf32_state()}",
        )
    else:
        table.add("device", f"{device} (dry run: device and reference are both the CPU)")
        table.add("torch", f"{torch.__version__}, {torch.get_num_threads()} threads")
    table.add("host", f"{cpu_name()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    version = content_version(checkpoint.read_bytes())
    table.add("checkpoint", f"{checkpoint.name} (version {version})")


def run_part(name: str, table: Table, deadline: float, part: Callable[[], object]) -> None:
    """Run one part unless the time budget is spent; a part that raises becomes a failed row
    (the rest still run: a lent GPU's minutes are too few to lose the whole table to one part)."""
    if time.monotonic() > deadline:
        table.add(name, "not run: time budget spent", ok=False)
        return
    try:
        part()
    except Exception as exc:
        traceback.print_exc()
        table.add(name, f"FAILED: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}", False)


PARTS = ("tests", "pixels", "throughput", "biomes", "server")


def parts_list(text: str) -> tuple[str, ...]:
    """--parts: a rerun on a lent GPU can repeat only the part that failed."""
    names = tuple(text.split(","))
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown parts {unknown}; choose from {list(PARTS)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU dry run)")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped checkpoint")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--budget-s", type=float, default=400, help="no part starts after this")
    parser.add_argument(
        "--parts", type=parts_list, default=PARTS, help=f"comma list of {','.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        print(f"missing: torch is not importable from {sys.executable} ({exc})")
        return 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(SKIP_LINE)
        return 0
    # SIGTERM (bench/gpu_check.sh's time limit) unwinds, so the server is stopped by its finally
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    sys.path.insert(0, str(ROOT))
    deadline = STARTED + args.budget_s
    sizes = QUICK if args.quick else FULL
    table = Table()
    missing = missing_modules("render")
    if missing:
        print(f"missing: {', '.join(missing)} (python {sys.executable})")
        return 2
    from infinitygan.model.checkpoint import DEFAULT_CHECKPOINT

    checkpoint = (args.checkpoint or DEFAULT_CHECKPOINT).resolve()
    load = args.load if args.load != "auto" else ("wrk" if shutil.which("wrk") else "python")
    describe(device, checkpoint, table)
    rates: dict[int, float] = {}  # fp32 tiles/s per batch, the server's cold rate's yardstick
    parts: dict[str, Callable[[], object]] = {
        "tests": lambda: seamlessness(device, table),
        "pixels": lambda: pixels(checkpoint, device, sizes, table),
        "throughput": lambda: rates.update(throughput(checkpoint, device, sizes, table)),
        "biomes": lambda: biomes(checkpoint, device, sizes, table),
        "server": lambda: server(checkpoint, device, sizes, load, rates, table),
    }
    try:
        for name in args.parts:
            run_part(name, table, deadline, parts[name])
    except SystemExit:  # SIGTERM: still print what was measured
        table.add("stopped", "by SIGTERM (bench/gpu_check.sh's time limit?)", ok=False)
        raise
    finally:
        table.add("wall time", f"{time.monotonic() - STARTED:.0f} s")
        table.add("result", "all checks passed" if table.ok else "SOME CHECKS FAILED", table.ok)
        print(table.markdown(), flush=True)
    return 0 if table.ok else 1


if __name__ == "__main__":
    sys.exit(main())
