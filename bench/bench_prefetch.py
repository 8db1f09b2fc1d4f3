"""Prefetch scale-out benchmark: one prefetch job worked by 1 and by 2 replicas on one Redis.

Each replica is a real `infinitygan serve` (one torch thread) pinned to a core of its own with
`taskset`, so that on a 2-core machine "two replicas" is two one-core machines and "one
replica" is one (its render thread and encoder threads share that core, as they would on a
machine of its own). Rounds alternate 1, 2, 1, 2, ... on a fresh Redis prefix and a fresh seed
each, so every job renders from cold; a round posts one job at the native zoom (whole
metatiles) to the first replica, polls it until it is done, and takes tiles per second from the
job's own start and finish times. Reported: each round, the paired ratio 2 replicas / 1 replica,
and how the metatiles were shared between the replicas.

    .venv/bin/python bench/bench_prefetch.py [--metatiles 12] [--rounds 2] [--pause-pid PID]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from machine import cpu_flags, cpu_name, paused  # bench/, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's harness, shared with the benchmark
from tests.server.harness import RedisProcess, free_port, metric_value, start_serve, wait_ready  # noqa: E402

METATILE = 4


class Replica:
    """`infinitygan serve` on a free port, pinned to `core`, on the Redis at `redis_url`."""

    def __init__(self, checkpoint: Path, core: int, redis_url: str, prefix: str) -> None:
        self.url = f"http://127.0.0.1:{(port := free_port())}"
        ours = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {core})  # inherited by the child and every thread it starts
        try:
            self.proc = start_serve(
                checkpoint,
                port,
                subprocess.DEVNULL,  # a job's log lines must not fill an unread pipe
                REDIS_URL=redis_url,
                INFINITYGAN_REDIS_PREFIX=prefix,
                INFINITYGAN_METATILE=str(METATILE),
                INFINITYGAN_ENCODE_THREADS="1",  # one core: one encoder beside the model
            )
        finally:
            os.sched_setaffinity(0, ours)
        wait_ready(self.url, self.proc, timeout_s=300)

    def rendered(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return metric_value(text, "infinitygan_rendered_metatiles_total")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def run_job(replicas: list[Replica], seed: int, metatiles: int) -> dict[str, Any]:
    """One native-zoom job of `metatiles` whole metatiles (a row of them), posted to the first
    replica; tiles per second by the job's own clock."""
    before = [r.rendered() for r in replicas]
    width = METATILE * metatiles
    job = {"seed": seed, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, width - 1, METATILE - 1]}
    posted = httpx.post(f"{replicas[0].url}/prefetch", json=job, timeout=30)
    assert posted.status_code == 202, posted.text
    job_url = f"{replicas[-1].url}/prefetch/{posted.json()['id']}"  # any replica answers
    while (progress := httpx.get(job_url, timeout=30).json())["state"] == "running":
        time.sleep(0.25)
    assert progress["state"] == "done" and progress["failed"] == 0, progress
    shares = [r.rendered() - b for r, b in zip(replicas, before, strict=True)]
    assert sum(shares) == metatiles, shares
    return {
        "tiles": progress["total"],
        "seconds": progress["elapsed_seconds"],
        "tiles_per_second": progress["total"] / progress["elapsed_seconds"],
        "metatiles_by_replica": shares,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--checkpoint", type=Path, default=ROOT / "checkpoints/infinitygan-small.safetensors"
    )
    p.add_argument("--metatiles", type=int, default=12, help="metatiles per job")
    p.add_argument("--rounds", type=int, default=2, help="pairs of 1- and 2-replica jobs")
    p.add_argument("--pause-pid", type=int, default=None, help="SIGSTOP this pid meanwhile")
    args = p.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs 2 cores (one per replica)")
    print("# bench_prefetch")
    print(f"# cpu: {cpu_name()} ({os.cpu_count()} cpus; {cpu_flags()})")
    print(
        f"# checkpoint {args.checkpoint.name}, metatile {METATILE}, {args.metatiles} metatiles/job"
    )
    rows = []
    with paused(args.pause_pid), ExitStack() as stack:
        redis_proc = RedisProcess()
        redis_proc.start()
        stack.callback(redis_proc.kill)
        for k in range(2 * args.rounds):
            n = 1 + k % 2
            replicas = []
            try:
                for core in range(n):
                    replicas.append(Replica(args.checkpoint, core, redis_proc.url, f"bench{k}"))
                result = run_job(replicas, 9_000_000 + k, args.metatiles)
            finally:
                for r in replicas:
                    r.stop()
            rows.append((n, result))
            print(
                f"round {k // 2 + 1}, {n} replica(s): {result['tiles']} tiles in "
                f"{result['seconds']:.1f} s = {result['tiles_per_second']:.2f} tiles/s; "
                f"metatiles by replica {result['metatiles_by_replica']}"
            )
    one = [r["tiles_per_second"] for n, r in rows if n == 1]
    two = [r["tiles_per_second"] for n, r in rows if n == 2]
    ratios = [b / a for a, b in zip(one, two, strict=True)]
    print(
        f"\n2 replicas / 1 replica, paired by round: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target >= 1.8"
    )


if __name__ == "__main__":
    main()
