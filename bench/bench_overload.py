"""Overload benchmark: what the tile server delivers when asked for more cold tiles than it
can render before its timeout, this tree against a baseline revision, side by side in one run.

Each tree in turn runs `infinitygan serve` on the same checkpoint (embedded cache, default
settings except the render timeout). `--clients` clients each ask for a tile of a metatile nobody
asked for before, and ask again as soon as they are answered (after `Retry-After` if one came
with the answer), for `--seconds`; `/healthz` is
polled meanwhile. After the load, the server is left to finish what it started. Reported:

- goodput: metatiles delivered to a client (a 200 for a fresh metatile) / metatiles rendered;
- how long a 200 and a refusal (503) took: a refusal is only useful when it comes at once;
- `/healthz` latency during the overload (the event loop must stay responsive).

    .venv/bin/python bench/bench_overload.py --baseline 3ea7bac --pause-pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from machine import cpu_flags, cpu_name, paused  # bench/, beside this script
from revisions import ROOT, describe, exported, git

sys.path.insert(0, str(ROOT))
from tests.server.harness import free_port, metric_value, wait_ready


class Served:
    """`infinitygan serve` from one tree, on a free port, until stopped."""

    def __init__(self, tree: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = "import sys; from infinitygan.cli import main; sys.exit(main())"
        environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # embedded cache
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", str(self.port), "--log-level", "error"],
            cwd=tree,
            env={**environ, **env, "PYTHONPATH": str(tree)},
        )
        wait_ready(self.url, self.proc, timeout_s=300)

    def metric(self, name: str) -> float:
        return metric_value(httpx.get(f"{self.url}/metrics", timeout=10).text, name)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def overload(url: str, clients: int, seconds: float, seed: int, stride: int) -> dict:
    """Closed-loop load of fresh cold metatiles; answers and /healthz latencies."""
    fresh = itertools.count()
    answers: list[tuple[int, str, float]] = []
    health: list[float] = []
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def user() -> None:
            while time.monotonic() < end:
                path = f"/tiles/{seed}/8/{next(fresh) * stride}/0.png"
                start = time.monotonic()
                response = await client.get(path)
                code = "" if response.status_code == 200 else response.json()["error"]["code"]
                answers.append((response.status_code, code, time.monotonic() - start))
                if "retry-after" in response.headers:  # as a well-behaved HTTP client does
                    await asyncio.sleep(float(response.headers["retry-after"]))

        async def prober() -> None:
            while time.monotonic() < end:
                start = time.monotonic()
                await client.get("/healthz")
                health.append(time.monotonic() - start)
                await asyncio.sleep(0.05)

        await asyncio.gather(prober(), *(user() for _ in range(clients)))
    return {"answers": answers, "health": health}


def settle(server: Served) -> float:
    """Wait until the model stopped rendering; the metatiles rendered in all."""
    last, quiet_since = -1.0, time.monotonic()
    while True:
        rendered = server.metric("infinitygan_rendered_metatiles_total")
        if rendered != last:
            last, quiet_since = rendered, time.monotonic()
        elif time.monotonic() - quiet_since > 8:
            return rendered
        time.sleep(0.5)


def measure(tree: Path, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    env = {"INFINITYGAN_RENDER_TIMEOUT_S": str(args.timeout)}
    if args.checkpoint:
        env["INFINITYGAN_CHECKPOINT"] = str(Path(args.checkpoint).resolve())
    server = Served(tree, env)
    try:
        before = server.metric("infinitygan_rendered_metatiles_total")
        load = asyncio.run(overload(server.url, args.clients, args.seconds, seed, args.metatile))
        rendered = settle(server) - before
    finally:
        server.stop()
    answers = load["answers"]
    ok = [s for status, _, s in answers if status == 200]
    refused = [s for status, _, s in answers if status == 503]
    codes = sorted({code for _, code, _ in answers if code})
    return {
        "requests": len(answers),
        "ok": len(ok),
        "refused": len(refused),
        "other": len(answers) - len(ok) - len(refused),
        "codes": ",".join(codes),
        "rendered": rendered,
        "goodput": len(ok) / rendered if rendered else float("nan"),
        "ok_median_s": statistics.median(ok) if ok else float("nan"),
        "refused_median_s": statistics.median(refused) if refused else float("nan"),
        "refused_max_s": max(refused) if refused else float("nan"),
        "health_median_ms": 1000 * statistics.median(load["health"]),
        "health_max_ms": 1000 * max(load["health"]),
    }


ROWS = [
    ("requests answered", "requests", "{:.0f}"),
    ("200 (a fresh metatile each)", "ok", "{:.0f}"),
    ("503", "refused", "{:.0f}"),
    ("other statuses", "other", "{:.0f}"),
    ("503 codes", "codes", "{}"),
    ("metatiles rendered", "rendered", "{:.0f}"),
    ("goodput: delivered / rendered", "goodput", "{:.2f}"),
    ("200: median s", "ok_median_s", "{:.2f}"),
    ("503: median s", "refused_median_s", "{:.2f}"),
    ("503: max s", "refused_max_s", "{:.2f}"),
    ("/healthz: median ms", "health_median_ms", "{:.1f}"),
    ("/healthz: max ms", "health_max_ms", "{:.1f}"),
]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--baseline", help="git revision to compare against (default: main)")
    p.add_argument("--checkpoint", help="checkpoint both serve (default: the shipped one)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=45.0, help="length of the load")
    p.add_argument("--timeout", type=float, default=15.0, help="INFINITYGAN_RENDER_TIMEOUT_S")
    p.add_argument("--metatile", type=int, default=4, help="the servers' metatile size (default)")
    p.add_argument("--pause-pid", type=int, action="append", default=[], help="SIGSTOP meanwhile")
    args = p.parse_args()
    rev = args.baseline or git("rev-parse", "main")
    import torch

    print("# bench_overload")
    print(
        f"# cpu: {cpu_name()} ({os.cpu_count()} cpus; {cpu_flags()}), torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    print(f"# old: {describe(rev)}")
    print(f"# new: {describe(None)}")
    print(
        f"# {args.clients} clients, each asking for a fresh cold metatile again as soon as "
        f"answered (after Retry-After), for {args.seconds:g} s; render timeout {args.timeout:g} s"
    )
    with ExitStack() as stack:
        for pid in args.pause_pid:
            stack.enter_context(paused(pid))
        base_root = stack.enter_context(exported(rev))
        old = measure(base_root, args, seed=1001)
        new = measure(ROOT, args, seed=2002)
    print("\n| | old | new |\n|---|---|---|")
    for label, key, fmt in ROWS:
        print(f"| {label} | {fmt.format(old[key])} | {fmt.format(new[key])} |")


if __name__ == "__main__":
    main()
